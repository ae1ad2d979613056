"""LSH: sign random projections (Charikar 2002) of pixels or of a pretrained backbone's features.

The floor every learned method is compared against. Features are centred by the train mean before projecting
(sign random projections approximate angles around the origin, so uncentred non-negative features would give
near-constant bits). Deviation: none; there is no paper protocol beyond this.
"""
from __future__ import annotations

import numpy as np
import torch

from ..config import Param
from ..networks import BACKBONES, Backbone, InputSpec
from ..training import map_batches
from ..transforms import build
from .base import Method, TrainSet, check_role, sign_codes


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
        p, shape = self.params, info.image_shape
        self.backbone = None
        if p["features"] == "backbone":
            self.backbone = Backbone(p["backbone"], shape, p["pretrained"], p["input_size"]).eval()
        spec = InputSpec(None, shape[-1], (0.0,), (1.0,)) if self.backbone is None else self.backbone.spec
        self.transform = build(self.name, "none", spec, shape, train=False)  # pixels in [0, 1], or the net's input
        dim = int(np.prod(shape)) if self.backbone is None else self.backbone.feature_dim
        rng = np.random.default_rng(seed)
        self.projection = rng.standard_normal((dim, bits)).astype(np.float32)
        self.mean = np.zeros(dim, np.float32)

    def _map(self, fn, images, width: int, desc: str) -> torch.Tensor:
        """fn of the features of `images`, batch by batch."""
        net = self.backbone.to(self.runtime.device) if self.backbone is not None else None

        def apply(x):
            return fn(x.flatten(1) if net is None else net(x).float())

        return map_batches(apply, images, self.transform, self.params["batch_size"], width, self.runtime.workers,
                           self.runtime.device, desc)

    def fit(self, train: TrainSet, log=None) -> list[dict]:
        """The train mean of the features (summed batch by batch in float64)."""
        sums = self._map(lambda f: f.double().sum(0, keepdim=True), train.images, len(self.mean), "features")
        self.mean = (sums.double().sum(0) / max(len(train), 1)).numpy().astype(np.float32)
        return [{"epoch": 0, "loss": 0.0}]

    def encode(self, data, modality="image", role="database"):
        check_role(modality, role, self.modalities)
        mean = torch.from_numpy(self.mean).to(self.runtime.device)
        projection = torch.from_numpy(self.projection).to(self.runtime.device)
        return sign_codes(self._map(lambda f: (f - mean) @ projection, data, self.bits, f"encode {role}"))

    def state_dict(self):
        return {"projection": torch.from_numpy(self.projection), "mean": torch.from_numpy(self.mean)}

    def load_state_dict(self, state):
        self.projection = state["projection"].numpy()
        self.mean = state["mean"].numpy()
