"""The params every deep method shares (backbone, input, augmentation, encoding; SGD), each method keeping its own
defaults: a method's schema is ``{**backbone_params(...), **sgd_params(...), <its own keys>}``."""
from __future__ import annotations

from ..config import Param
from ..networks import BACKBONES
from ..transforms import AUGMENTS


def backbone_params(backbone: str = "smallcnn", input_size: int = 224, downsample: int = 1, augment_shift: int = 2,
                    encode_batch_size: int = 256) -> dict[str, Param]:
    """The image network and its input: `backbone` (ImageNet ones with `pretrained` weights, resized to
    `input_size`), smallcnn's input pooling `downsample`, `augment` (auto | paper | paper_test | shift | none, see
    hashbench.transforms) with its `augment_shift` pixels, and the batch size when encoding."""
    return {
        "backbone": Param(backbone, str, choices=BACKBONES),
        "pretrained": Param(True, bool),
        "input_size": Param(input_size, int, ge=32),
        "downsample": Param(downsample, int, ge=1),
        "augment": Param("auto", str, choices=AUGMENTS),
        "augment_shift": Param(augment_shift, int, ge=0),
        "encode_batch_size": Param(encode_batch_size, int, ge=1),
    }


def sgd_params(lr: float, lr_keys: tuple = ("lr",), momentum: float = 0.9, weight_decay: float = 5e-4) -> dict:
    """SGD with momentum and weight decay; one lr per key of `lr_keys` (one per parameter group or optimiser)."""
    return {**{key: Param(lr, float, gt=0) for key in lr_keys},
            "momentum": Param(momentum, float, ge=0, le=1), "weight_decay": Param(weight_decay, float, ge=0)}
