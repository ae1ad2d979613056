"""LSH: sign random projections (Charikar 2002) of pixels or of a pretrained backbone's features.

The floor every learned method is compared against. Features are centred by the train mean before projecting
(sign random projections approximate angles around the origin, so uncentred non-negative features would give
near-constant bits); the projections are standard normal, drawn from the seed. Deviation: none; there is no paper
protocol beyond this. FAISS's ``IndexLSH`` was not used: it draws its rotation from its own fixed seed and
thresholds at zero or at per-bit medians rather than at the train mean, and would not make the module shorter.
"""
from __future__ import annotations

import numpy as np

from .shallow import LinearHashing


class LSH(LinearHashing):
    name = "lsh"
    needs = frozenset()

    def __init__(self, bits, seed, params, info):
        super().__init__(bits, seed, params, info)
        rng = np.random.default_rng(seed)
        self.set_projection("image", np.zeros(self.features.dim), rng.standard_normal((self.features.dim, bits)))

    def fit(self, train):
        mean = self.inputs(train.images, "image").mean(0, dtype=np.float64)
        self.set_projection("image", mean, self.arrays["image_projection"])
        return [{"epoch": 0, "loss": 0.0}]
