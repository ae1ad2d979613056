"""What the shallow baselines share: fixed input features and a state made of a few arrays.

- ``FEATURE_SCHEMA`` / ``ImageFeatures``: images as flattened pixels scaled to [0, 1] (the default), or as the
  features of a pretrained backbone run once, frozen, in eval mode (``features: backbone``), computed a batch at a
  time from the stored images (``training.map_batches``). Texts are the raw bag of
  words (float32).
- ``ShallowMethod``: no network to train; `fit` fills ``self.arrays`` (name -> numpy array), which is the whole
  state (saved as tensors, loaded with weights_only=True). Nothing here is drawn from the seed: methods that are
  random (LSH's projections, ITQ's initial rotation, PQ's k-means, CMFH's start) seed their own draws.
- ``LinearHashing``: codes sign((x - mean) @ W) per modality, with ``<modality>_mean`` and ``<modality>_projection``
  in ``self.arrays``; LSH, PCAH, ITQ, CVH and CMFH differ only in how `fit` chooses them.
"""
from __future__ import annotations

import numpy as np
import torch

from ..config import Param
from ..errors import HashbenchError
from ..networks import BACKBONES, Backbone
from ..training import Runtime, StoredRows, map_batches
from ..transforms import build, flat_pixels, pixels
from .base import Method, TrainSet, sign_codes

FEATURE_SCHEMA = {
    "features": Param("pixels", str, choices=("pixels", "backbone")),
    "backbone": Param("resnet18", str, choices=BACKBONES),
    "pretrained": Param(True, bool),
    "input_size": Param(224, int, ge=32),
    "batch_size": Param(256, int, ge=1),
}


class ImageFeatures:
    """Images (a uint8 (N, H, W, C) array, or `training.StoredRows` read a batch at a time) -> float32 features
    (N, dim): the stored pixels / 255 (flattened as stored, H, W, C), or a frozen backbone's output."""

    def __init__(self, params: dict, image_shape: tuple):
        self.batch_size = params["batch_size"]
        self.backbone = None
        if params["features"] == "backbone":
            self.backbone = Backbone(params["backbone"], image_shape, params["pretrained"],
                                     params["input_size"]).eval()
        self.dim = int(np.prod(image_shape)) if self.backbone is None else self.backbone.feature_dim
        self.transform = pixels(image_shape) if self.backbone is None else \
            build("features", "none", self.backbone.spec, image_shape, train=False)

    def __call__(self, images, runtime: Runtime) -> np.ndarray:
        net = self.backbone.to(runtime.device) if self.backbone is not None else flat_pixels
        return map_batches(net, images, self.transform, self.batch_size, self.dim, runtime.workers, runtime.device,
                           "features").numpy().astype(np.float32)


def rows_array(data) -> np.ndarray:
    """All rows of an array or a `StoredRows` (texts: closed-form methods hold the whole train matrix anyway)."""
    if isinstance(data, StoredRows):
        return np.stack(data.rows(np.arange(len(data)))) if len(data) else np.zeros((0, 0), np.float32)
    return np.asarray(data)


class ShallowMethod(Method):
    """A method fitted in closed form (or by a few alternating steps) on fixed features; see the module docstring."""

    schema = FEATURE_SCHEMA

    def __init__(self, bits, seed, params, info):
        super().__init__(bits, seed, params, info)
        self.features = ImageFeatures(self.params, info.image_shape)
        self.arrays: dict[str, np.ndarray] = {}

    def inputs(self, data: np.ndarray, modality: str) -> np.ndarray:
        """The features of `data`: images through ImageFeatures, texts as float32 bags of words."""
        return self.features(data, self.runtime) if modality == "image" else rows_array(data).astype(np.float32)

    def train_inputs(self, train: TrainSet) -> dict[str, np.ndarray]:
        """{modality: train features} for every modality this method encodes."""
        return {m: self.inputs(train.images if m == "image" else train.texts, m) for m in self.modalities}

    def check_items(self, n: int, at_least: int, why: str) -> None:
        if n < at_least:
            raise HashbenchError(f"{self.name}: the train split has {n} items; it needs at least {at_least} ({why})")

    def state_dict(self):
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in self.arrays.items()}

    def load_state_dict(self, state):
        self.arrays = {k: v.numpy() for k, v in state.items()}


class LinearHashing(ShallowMethod):
    """Codes sign((x - mean) @ W) for each modality (0 -> +1)."""

    def encode(self, data, modality="image", role="database"):
        a = self.arrays
        return sign_codes((self.inputs(data, modality) - a[f"{modality}_mean"]) @ a[f"{modality}_projection"])

    def set_projection(self, modality: str, mean: np.ndarray, projection: np.ndarray) -> None:
        self.arrays[f"{modality}_mean"] = np.asarray(mean, np.float32)
        self.arrays[f"{modality}_projection"] = np.asarray(projection, np.float32)


def pca(x: np.ndarray, dim: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), components (D, dim)) of scikit-learn's exact PCA of x (N, D); the leading `dim` directions."""
    from sklearn.decomposition import PCA

    if dim > min(x.shape):
        raise HashbenchError(f"bits: {dim} is not allowed for {method} on {x.shape[0]} train items of {x.shape[1]} "
                             f"dimensions; use at most {min(x.shape)}")
    model = PCA(n_components=dim, svd_solver="full").fit(x.astype(np.float64))
    return model.mean_, model.components_.T
