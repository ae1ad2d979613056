"""The method contract (scikit-learn-like): construct with bits/seed/params, `fit` on the train split, `encode`.

A method declares what `fit` reads (`needs`), which modalities it encodes, whether it quantizes, its params schema,
and the evaluation protocol of its paper (`preset`). The train stage passes a `TrainSet` holding only what the
method declares, so a method that does not declare "labels" never sees them.

Codes that `encode` returns:
- binary methods: int8 +-1 codes (n, bits), for queries and database alike;
- quantized methods (`quantized = True`): real features (n, D) for queries (role="query") and codeword assignments
  (n, M) uint8/uint16 for the database (role="database"), scored by the evaluator's asymmetric distance with
  `codebooks()` of shape (M, K, D).
"""
from __future__ import annotations

import abc
import functools
import random
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from .. import inputs
from ..config import Param, validate
from ..errors import HashbenchError
from ..training import Field, Optim, Plan, Runtime, Shuffled, StoredRows, Stream, Trainer, map_batches
from ..training.runtime import place
from ..transforms import build, describe, resolve


@dataclass
class DatasetInfo:
    """What a method may know about the dataset when it is built (never labels of items)."""

    name: str
    image_shape: tuple
    n_classes: int
    modalities: frozenset  # subset of {"image", "tags", "text"}
    text_dim: int = 0
    text_vocab: tuple = ()  # the words of the text columns, when the dataset names them (`hashbench search --text`)


@dataclass
class TrainSet:
    """The train split as the method is allowed to see it. Fields a method did not declare stay None. Images and
    texts are arrays in memory or, from the pipeline, `training.StoredRows` read batch by batch (never whole)."""

    images: object  # uint8 (N, H, W, C) array or StoredRows
    labels: np.ndarray | None = None  # uint8 multi-hot (N, C)
    tag_targets: np.ndarray | None = None  # float32 (N, T): merged tags per image from the tags stage
    tag_embeddings: np.ndarray | None = None  # float32 (T, D): one word vector per merged tag
    texts: object = None  # float32 (N, V) bag of words, array or StoredRows
    unlabeled_images: object = None  # uint8 array or StoredRows, semi-supervised methods

    def __len__(self) -> int:
        return len(self.images)


class Method(abc.ABC):
    name: ClassVar[str]
    needs: ClassVar[frozenset] = frozenset()  # what fit() reads: subset of labels, tags, text, unlabeled
    modalities: ClassVar[tuple] = ("image",)
    quantized: ClassVar[bool] = False
    schema: ClassVar[dict[str, Param]] = {}
    preset: ClassVar[dict] = {}  # the paper's evaluation protocol, e.g. {"topk": 5000, "zero": "skip"}

    def __init_subclass__(cls, **kwargs):
        """Every subclass's `encode` first checks and prepares its input (`_checked_encode`)."""
        super().__init_subclass__(**kwargs)
        if "encode" in cls.__dict__:
            cls.encode = _checked_encode(cls.__dict__["encode"])

    def __init__(self, bits: int, seed: int, params: dict | None, info: DatasetInfo):
        self.check_bits(bits)
        self.bits, self.seed, self.info = bits, seed, info
        self.params = validate(self.name, params, self.schema)
        self.check_dataset(info)
        self.runtime = Runtime()  # where it trains and encodes: one CPU process unless a stage says otherwise
        seed_everything(seed)

    # --- what subclasses provide -------------------------------------------------------------------------
    @classmethod
    def check_bits(cls, bits: int) -> None:
        """Raise HashbenchError naming `bits` and what is allowed."""
        if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= 1024:
            raise HashbenchError(f"bits: {bits!r} is not allowed for {cls.name}; use an integer in 1..1024")

    @abc.abstractmethod
    def fit(self, train: TrainSet) -> list[dict]:
        """Train; return one dict per epoch with at least {"epoch", "loss"}."""

    @abc.abstractmethod
    def encode(self, data: np.ndarray, modality: str = "image", role: str = "database") -> np.ndarray:
        """Codes for `data` (uint8 images or float32 bag-of-words texts: arrays, or `training.StoredRows` that are
        read a batch at a time); see the module docstring. Callers may pass images of any size, files or PIL
        images: `_checked_encode` brings them to the model's shape first."""

    def codebooks(self) -> np.ndarray:
        """(M, K, D) float32 codebooks of a quantized method."""
        raise HashbenchError(f"method {self.name} does not quantize; it has no codebooks")

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Everything `encode` needs, as tensors (saved with torch.save, loaded with weights_only=True). By default
        the parameters and buffers of `self.net`; methods without one override this and `load_state_dict`."""
        return {k: v.detach().cpu() for k, v in self.net.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what `state_dict` returned."""
        self.net.load_state_dict(state)

    def run_info(self) -> dict:
        """What ran beyond the params (e.g. the resolved augmentation and its transforms), for models/model.json."""
        return {}

    # --- shared checks ----------------------------------------------------------------------------------
    @classmethod
    def check_dataset(cls, info: DatasetInfo) -> None:
        from ..catalog import datasets_with

        used = set(cls.needs) | set(cls.modalities)
        for modality in ("image", "tags", "text"):
            if modality in used and modality not in info.modalities:
                if modality == "image":  # a real set converted without its images (e.g. NUS-WIDE labels only)
                    raise HashbenchError(
                        f"method {cls.name} needs images, which dataset {info.name} lacks here (labels only); place "
                        f"them as the README's 'Placing a manually downloaded dataset' says")
                have = datasets_with(modality)
                raise HashbenchError(
                    f"method {cls.name} needs the {modality} modality, which dataset {info.name} lacks; "
                    f"datasets with {modality}: {', '.join(have) or 'none'}")


def _checked_encode(encode):
    """`encode` behind the input checks of `hashbench.inputs`: images of any size (arrays, PIL images, files) are
    brought to the model's image shape; a wrong channel count, an empty batch or a wrong text length stop with one
    line naming what the model expects."""
    if getattr(encode, "checks_inputs", False):
        return encode

    @functools.wraps(encode)
    def checked(self, data, modality="image", role="database"):
        check_role(modality, role, self.modalities)
        if isinstance(data, StoredRows):  # rows of the dataset file: already at the model's shape
            return encode(self, data, modality, role)
        if modality == "text":
            data = inputs.texts(data, self.info.text_dim)
        else:
            data = inputs.images(data, self.info.image_shape)
        return encode(self, data, modality, role)
    checked.checks_inputs = True
    return checked


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def sign_codes(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """+-1 int8 codes; 0 maps to +1 (so Hamming distances stay integers)."""
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return np.where(x >= 0, 1, -1).astype(np.int8)


def check_role(modality: str, role: str, modalities: tuple) -> None:
    if modality not in modalities:
        raise HashbenchError(f"modality: {modality!r} is not allowed; this method encodes {', '.join(modalities)}")
    if role not in ("query", "database"):
        raise HashbenchError(f"role: {role!r} is not allowed; use query or database")


class DeepMethod(Method):
    """A method trained by ``hashbench.training.Trainer``, which owns the loop, devices, precision, checkpoints and
    distributed training. A subclass supplies the pieces:

    - `setup(train, ctx)`: check the train set, build what depends on it (WSDHQ's head);
    - `plan(train)`: its data, a `training.Plan` of streams (fields + batch plan) and epochs or iterations;
    - `modules()`: every trained module (saved in model.pt and checkpoints); `frozen_modules()`: moved to the device
      only;
    - `optimizers()`: `training.Optim` list (optimiser, schedule, stepped per "epoch" or "step");
    - `training_step(batch, ctx)`: (loss, {part: value}) for one batch (the fields of the plan's stream, or
      {stream: fields} for several), network forwards inside `ctx.autocast()`, losses in float32;
    - optional hooks `on_epoch_start`, `on_epoch_end` (returns extra history fields), `on_train_end`, and
      `train_state` / `load_train_state` for state outside the modules (kept in checkpoints).
    """

    pool_first: ClassVar[bool] = True  # `shift` moves the image after smallcnn's input pooling

    def __init__(self, bits: int, seed: int, params: dict | None, info: DatasetInfo):
        super().__init__(bits, seed, params, info)
        self.augment = resolve(self.params["augment"], info.name) if "augment" in self.params else "none"
        self.trainer = None

    # --- hooks with defaults ---------------------------------------------------------------------------------
    def setup(self, train: TrainSet, ctx) -> None:
        """Check the train set; build what depends on it."""

    @abc.abstractmethod
    def plan(self, train: TrainSet):
        """The training data: a training.Plan."""

    @abc.abstractmethod
    def modules(self) -> dict[str, torch.nn.Module]:
        """Every trained module, by name."""

    def frozen_modules(self) -> dict[str, torch.nn.Module]:
        return {}

    @abc.abstractmethod
    def optimizers(self) -> list:
        """training.Optim list."""

    @abc.abstractmethod
    def training_step(self, batch: dict, ctx) -> tuple[torch.Tensor, dict]:
        """(loss, parts) of one batch."""

    def on_epoch_start(self, epoch: int, ctx) -> None:
        pass

    def on_epoch_end(self, epoch: int, ctx) -> dict:
        return {}

    def on_train_end(self, ctx) -> None:
        pass

    def train_state(self) -> dict:
        return {}

    def load_train_state(self, state: dict) -> None:
        pass

    def fingerprint(self) -> str:
        """What the run depends on beyond params and the plan's fields (for the checkpoint key)."""
        return ""

    # --- shared machinery --------------------------------------------------------------------------------------
    def fit(self, train: TrainSet) -> list[dict]:
        self.trainer = Trainer(self, self.runtime)
        return self.trainer.fit(train)

    def transforms(self, spec) -> tuple:
        """(train, test) image transforms of this method's `augment` for a network taking `spec`."""
        p = self.params
        return tuple(build(self.name, self.augment, spec, self.info.image_shape, train, p["augment_shift"],
                           self.pool_first) for train in (True, False))

    def map_rows(self, fn, rows, transform, width: int, desc: str | None = None) -> torch.Tensor:
        """fn over `rows` (images through `transform`, or texts) in eval mode on the runtime's device, without
        gradients; outputs on the CPU."""
        for module in (*self.modules().values(), *self.frozen_modules().values()):
            place(module, self.runtime.device).eval()
        return map_batches(fn, rows, transform, self.params["encode_batch_size"], width, self.runtime.workers,
                           self.runtime.device, desc)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"{name}.{k}": v.detach().cpu() for name, module in self.modules().items()
                for k, v in module.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        torch.nn.ModuleDict(self.modules()).load_state_dict({k: v for k, v in state.items()
                                                             if k.split(".", 1)[0] in self.modules()})

    def run_info(self) -> dict:
        info = {"augment": self.augment}
        if hasattr(self, "image_transforms"):
            train, test = self.image_transforms
            info["transforms"] = {"train": describe(train), "test": describe(test)}
        return info


class LabelHashing(DeepMethod):
    """One image network `net` trained by `loss_fn(outputs, multi-hot labels)`, codes = sign of its outputs (DNNH,
    HyP², DPSH, DSH, CSQ, HashNet). By default: shuffled batches of `batch_size` labelled images for `epochs`
    epochs, and SGD over `net` with the lr multiplied by `lr_gamma` every `lr_step_epochs` epochs."""

    def modules(self):
        return {"net": self.net}

    def plan(self, train: TrainSet):
        fields = {"image": Field(train.images, self.image_transforms[0]), "label": Field(train.labels)}
        return Plan({"train": Stream(fields, Shuffled(len(train), self.params["batch_size"], merge_lone=True))},
                    epochs=self.params["epochs"])

    def optimizers(self):
        p = self.params
        optimizer = torch.optim.SGD(self.net.parameters(), lr=p["lr"], momentum=p["momentum"],
                                    weight_decay=p["weight_decay"])
        return [Optim(optimizer, torch.optim.lr_scheduler.StepLR(optimizer, p["lr_step_epochs"], p["lr_gamma"]))]

    def training_step(self, batch, ctx):
        with ctx.autocast():
            out = self.net(batch["image"])
        return self.loss_fn(out.float(), batch["label"].float()), {}

    def encode(self, data, modality="image", role="database"):
        return sign_codes(self.map_rows(self.net, data, self.image_transforms[1], self.bits, f"encode {role}"))
