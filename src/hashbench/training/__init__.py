"""Training: the one loop (`Trainer`), where it runs (`Runtime`), streaming data (`loaders`), checkpoints, and the
params every deep method shares."""
from .loaders import ClassBalanced, Cycled, Field, Plan, Shuffled, StoredRows, Stream, map_batches
from .params import backbone_params, sgd_params
from .runtime import RUNTIME_SCHEMA, Runtime
from .trainer import Optim, Trainer

__all__ = ["ClassBalanced", "Cycled", "Field", "Optim", "Plan", "RUNTIME_SCHEMA", "Runtime", "Shuffled",
           "StoredRows", "Stream", "Trainer", "backbone_params", "map_batches", "sgd_params"]
