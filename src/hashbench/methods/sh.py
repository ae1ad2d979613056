"""SH: spectral hashing (Weiss, Torralba & Fergus, NIPS 2008), on pixels or a pretrained backbone's features.

As the paper's algorithm (and its reference trainSH / compressSH): PCA of the train features to p = min(bits, D)
directions (scikit-learn's exact PCA); along each direction d the train projections span [a_d, b_d]. The
eigenfunctions of the uniform 1-D Laplacian, cos(k pi (y_d - a_d) / (b_d - a_d)), have eigenvalues growing with
(k / (b_d - a_d))^2; every direction offers the modes k = 1 .. ceil((bits + 1) (b_d - a_d) / max_d'(b_d' - a_d')) - 1,
and the `bits` modes with the smallest eigenvalue are kept (ties: direction order, then k; the constant mode k = 0
is never one). Bit i is the sign of its eigenfunction, cos(k_i pi (y_{d_i} - a_{d_i}) / (b_{d_i} - a_{d_i})), 0 -> +1
(the reference maps 0 to the 0 bit; a product that is exactly 0 does not occur in practice). Deterministic.

Deviation: the reference widens [a, b] by the machine epsilon; here by nothing (the codes only change for items
exactly on the train extremes' rounding boundary).
"""
from __future__ import annotations

import numpy as np

from .base import sign_codes
from .shallow import ShallowMethod, pca


def spectral_modes(ranges: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(direction, k) of the `bits` smallest-eigenvalue one-dimensional modes for PCA directions with `ranges`."""
    max_mode = np.ceil((bits + 1) * ranges / ranges.max()).astype(int)
    dims = np.concatenate([np.full(max(m - 1, 0), d) for d, m in enumerate(max_mode)])
    ks = np.concatenate([np.arange(1, m) for m in max_mode])
    order = np.argsort((ks / ranges[dims]) ** 2, kind="stable")[:bits]
    return dims[order], ks[order]


class SH(ShallowMethod):
    name = "sh"
    needs = frozenset()

    def fit(self, train):
        x = self.inputs(train.images, "image")
        mean, components = pca(x, min(self.bits, x.shape[1]), self.name)
        y = (x - mean) @ components
        low, high = y.min(0), y.max(0)
        dims, ks = spectral_modes(high - low, self.bits)
        self.arrays = {"mean": mean.astype(np.float32), "components": components.astype(np.float32),
                       "low": low.astype(np.float32), "width": (high - low).astype(np.float32),
                       "dims": dims.astype(np.int64), "modes": ks.astype(np.int64)}
        return [{"epoch": 0, "loss": 0.0}]

    def encode(self, data, modality="image", role="database"):
        a = self.arrays
        y = (self.inputs(data, modality) - a["mean"]) @ a["components"]
        d = a["dims"]
        return sign_codes(np.cos(np.pi * a["modes"] * (y[:, d] - a["low"][d]) / a["width"][d]))
