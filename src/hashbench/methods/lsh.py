"""LSH: sign random projections (Charikar 2002) of pixels or of a pretrained backbone's features.

The floor every learned method is compared against. Features are centred by the train mean before projecting
(sign random projections approximate angles around the origin, so uncentred non-negative features would give
near-constant bits). Deviation: none; there is no paper protocol beyond this.
"""
from __future__ import annotations

import numpy as np
import torch

from ..config import Param
from ..networks import BACKBONES, Backbone
from .base import Method, TrainSet, check_role, forward_batches, sign_codes


class LSH(Method):
    name = "lsh"
    needs = frozenset()
    schema = {
        "features": Param("pixels", str, choices=("pixels", "backbone")),
        "backbone": Param("resnet18", str, choices=BACKBONES),
        "pretrained": Param(True, bool),
        "input_size": Param(224, int, ge=32),
        "batch_size": Param(256, int, ge=1),
    }

    def __init__(self, bits, seed, params, info):
        super().__init__(bits, seed, params, info)
        self.backbone = None
        if self.params["features"] == "backbone":
            p = self.params
            self.backbone = Backbone(p["backbone"], info.image_shape, p["pretrained"], p["input_size"]).eval()
        dim = int(np.prod(info.image_shape)) if self.backbone is None else self.backbone.feature_dim
        rng = np.random.default_rng(seed)
        self.projection = rng.standard_normal((dim, bits)).astype(np.float32)
        self.mean = np.zeros(dim, np.float32)

    def _features(self, images: np.ndarray) -> np.ndarray:
        if self.backbone is None:
            return images.reshape(len(images), -1).astype(np.float32) / 255.0
        return forward_batches(lambda x: self.backbone(self.backbone.prepare(x)), images, self.params["batch_size"],
                               self.backbone.feature_dim, "features").numpy().astype(np.float32)

    def fit(self, train: TrainSet) -> list[dict]:
        self.mean = self._features(train.images).mean(0, dtype=np.float64).astype(np.float32)
        return [{"epoch": 0, "loss": 0.0}]

    def encode(self, data, modality="image", role="database"):
        check_role(modality, role, self.modalities)
        return sign_codes((self._features(data) - self.mean) @ self.projection)

    def state_dict(self):
        return {"projection": torch.from_numpy(self.projection), "mean": torch.from_numpy(self.mean)}

    def load_state_dict(self, state):
        self.projection = state["projection"].numpy()
        self.mean = state["mean"].numpy()
