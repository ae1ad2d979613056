"""OPQ: optimized product quantization (Ge, He, Ke & Sun, CVPR 2013; the non-parametric version), trained with
FAISS's ``OPQMatrix`` followed by a ``ProductQuantizer`` on the rotated features, as FAISS's ``"OPQ{M},PQ{M}"``
index does.

OPQ alternates, ``iterations`` times (FAISS's default 50), between training PQ codebooks on the rotated train
features (4 k-means iterations, 40 the first time) and solving the orthogonal Procrustes problem for the rotation
R that best maps the features onto their reconstructions. A final PQ (25 k-means iterations) is then trained on the
rotated features. Codes, queries and the evaluator's inner-product score work as for PQ (:mod:`.pq`), in the
rotated space: ||Rq - x_hat||^2 ranks the database exactly as the augmented inner product does.

Deviations from FAISS's defaults, both for seeding: the starting rotation is a random orthogonal matrix drawn from
the method's seed (FAISS draws it from the fixed seed 1234), and the k-means inside the OPQ iterations use the
method's seed (FAISS: 1234). The rotation is learnt on the zero-padded features (FAISS centres them for this step
only); it is applied without centring, as FAISS applies it.
"""
from __future__ import annotations

import numpy as np

from ..config import Param
from .pq import PQ


class OPQ(PQ):
    name = "opq"
    schema = {**PQ.schema, "iterations": Param(50, int, ge=1)}

    def learn_transform(self, x):
        import faiss

        opq = faiss.OPQMatrix(self.dim, self.books)
        opq.niter = self.params["iterations"]
        inner = self.product_quantizer()  # kept referenced while OPQ trains with it
        opq.pq = inner
        start, _ = np.linalg.qr(np.random.default_rng(self.seed).standard_normal((self.dim, self.dim)))
        faiss.copy_array_to_vector(start.astype(np.float32).ravel(), opq.A)
        opq.train(x)
        self.arrays["rotation"] = faiss.vector_to_array(opq.A).reshape(self.dim, self.dim)

    def transform(self, x):
        return np.ascontiguousarray(x @ self.arrays["rotation"].T, dtype=np.float32)
