"""ITQ: iterative quantization, PCA-ITQ (Gong, Lazebnik, Gordo & Perronnin, CVPR 2011 / TPAMI 2013), on pixels or a
pretrained backbone's features.

Features are centred by the train mean and projected onto the leading `bits` principal components (scikit-learn's
exact PCA); FAISS's ``ITQMatrix`` then learns the orthogonal rotation R that minimises the quantization loss
||B - V R||_F^2 of the projected train data V by alternating B = sign(V R) and an orthogonal Procrustes step,
``iterations`` times (50, as the paper and FAISS) from a random orthogonal start drawn from the method's seed.
Codes are sign((x - mean) P R) (0 -> +1); the train loss reported is that quantization loss per item.

Deviation: FAISS's full ``ITQTransform`` also L2-normalises the centred features before its PCA; it is not used,
because the paper's ITQ (and its reference code) runs PCA on the centred features only.
"""
from __future__ import annotations

import numpy as np

from ..config import Param
from .shallow import FEATURE_SCHEMA, LinearHashing, pca


class ITQ(LinearHashing):
    name = "itq"
    needs = frozenset()
    schema = {**FEATURE_SCHEMA, "iterations": Param(50, int, ge=0)}

    def fit(self, train):
        import faiss

        x = self.inputs(train.images, "image")
        mean, components = pca(x, self.bits, self.name)
        v = np.ascontiguousarray((x - mean) @ components, dtype=np.float32)
        itq = faiss.ITQMatrix(self.bits)
        itq.max_iter, itq.seed = self.params["iterations"], self.seed
        itq.train(v)
        rotation = faiss.vector_to_array(itq.A).reshape(self.bits, self.bits).T  # apply(v) = v @ A^T
        self.set_projection("image", mean, components @ rotation)
        rotated = v @ rotation
        loss = np.mean(np.sum((np.where(rotated >= 0, 1.0, -1.0) - rotated) ** 2, axis=1))
        return [{"epoch": 0, "loss": float(loss)}]
