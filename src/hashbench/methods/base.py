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
from tqdm.auto import tqdm

from .. import inputs
from ..config import Param, validate
from ..errors import HashbenchError


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
    """The train split as the method is allowed to see it. Fields a method did not declare stay None."""

    images: np.ndarray  # uint8 (N, H, W, C)
    labels: np.ndarray | None = None  # uint8 multi-hot (N, C)
    tag_targets: np.ndarray | None = None  # float32 (N, T): merged tags per image from the tags stage
    tag_embeddings: np.ndarray | None = None  # float32 (T, D): one word vector per merged tag
    texts: np.ndarray | None = None  # float32 (N, V) bag of words
    unlabeled_images: np.ndarray | None = None  # uint8, semi-supervised methods

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
        """Codes for `data` (uint8 images or float32 bag-of-words texts); see the module docstring. Callers may
        pass images of any size, files or PIL images: `_checked_encode` brings them to the model's shape first."""

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
        if modality == "text":
            data = inputs.texts(data, self.info.text_dim)
        else:
            data = inputs.images(data, self.info.image_shape)
        return encode(self, data, modality, role)
    checked.checks_inputs = True
    return checked


def device() -> torch.device:
    """CUDA when present (GPU checks), else CPU (the default, where runs are byte-reproducible)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def batches(n: int, batch_size: int, desc: str | None = None):
    """Consecutive index slices over n items (with a progress bar when desc is given)."""
    starts = range(0, n, batch_size)
    if desc:
        starts = tqdm(starts, desc=desc, unit="batch", leave=False)
    for start in starts:
        yield slice(start, min(start + batch_size, n))


@torch.no_grad()
def forward_batches(fn, data, batch_size: int, width: int, desc: str | None = None) -> torch.Tensor:
    """fn(data[s]) over consecutive batches, concatenated on the CPU: (n, width); (0, width) for no data."""
    out = [fn(data[s]).cpu() for s in batches(len(data), batch_size, desc=desc)]
    return torch.cat(out) if out else torch.zeros((0, width))


def sign_codes(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """+-1 int8 codes; 0 maps to +1 (so Hamming distances stay integers)."""
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return np.where(x >= 0, 1, -1).astype(np.int8)


def check_role(modality: str, role: str, modalities: tuple) -> None:
    if modality not in modalities:
        raise HashbenchError(f"modality: {modality!r} is not allowed; this method encodes {', '.join(modalities)}")
    if role not in ("query", "database"):
        raise HashbenchError(f"role: {role!r} is not allowed; use query or database")
