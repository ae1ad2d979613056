"""PQ: product quantization (Jégou, Douze & Schmid, TPAMI 2011), trained with FAISS's ``ProductQuantizer``.

Features (pixels or a backbone's, see :mod:`.shallow`) are zero-padded to a multiple of M dimensions and split
into M sub-vectors; each gets its own k-means codebook of K codewords (FAISS's k-means: 25 iterations, seeded with
the method's seed). bits = M log2 K; K = 256 by default (``codewords``), so 32 bits = 4 books of 256 words.

The natural PQ search is the squared-L2 asymmetric distance (ADC) ||q - x_hat||^2, with x_hat = sum_m C[m, b_m]
(the codewords live in disjoint blocks). The evaluator ranks quantized codes by the inner product q' . x_hat', so the
two are made to agree exactly by one extra dimension: the query becomes q' = [q, -1/2] and each codeword
C'[m, k] = [c_mk in its block, ||c_mk||^2]; then q' . x_hat' = q . x_hat - ||x_hat||^2 / 2
= (||q||^2 - ||q - x_hat||^2) / 2, which for a fixed query orders the database exactly as ADC does. (The test
checks this against FAISS's own ``IndexPQ`` search.) Database items are encoded as the nearest codeword per
sub-vector (uint8 ids), as FAISS's ``compute_codes`` does.

Deviations: none from FAISS's PQ, except that k-means' "please provide at least 39 K training points" warning is
silenced (``min_points_per_centroid = 1``; the embedded sets have 1,000-2,000 train items, so 256 words are fitted on
fewer than FAISS recommends). The train loss reported is the mean squared reconstruction error on the train split.
"""
from __future__ import annotations

import math

import numpy as np

from ..config import Param
from ..errors import HashbenchError
from .shallow import FEATURE_SCHEMA, ShallowMethod


class PQ(ShallowMethod):
    name = "pq"
    needs = frozenset()
    quantized = True
    schema = {**FEATURE_SCHEMA, "codewords": Param(256, int, choices=tuple(2 ** i for i in range(1, 9)))}

    def __init__(self, bits, seed, params, info):
        super().__init__(bits, seed, params, info)
        self.nbits = int(math.log2(self.params["codewords"]))
        if bits % self.nbits:
            raise HashbenchError(f"bits: {bits} is not allowed for {self.name} with {self.name}.codewords = "
                                 f"{self.params['codewords']}; use a multiple of {self.nbits}")
        self.books = bits // self.nbits
        if self.books > self.features.dim:
            raise HashbenchError(f"bits: {bits} is not allowed for {self.name}: {self.books} books do not fit "
                                 f"{self.features.dim}-d features; use at most {self.features.dim * self.nbits}")
        self.dim = -(-self.features.dim // self.books) * self.books  # padded to a multiple of M

    def product_quantizer(self):
        import faiss

        pq = faiss.ProductQuantizer(self.dim, self.books, self.nbits)
        pq.cp.seed = self.seed
        pq.cp.min_points_per_centroid = 1
        return pq

    def padded(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.pad(x, ((0, 0), (0, self.dim - x.shape[1]))), dtype=np.float32)

    def learn_transform(self, x: np.ndarray) -> None:
        """OPQ learns its rotation of the padded train features here; PQ has none."""

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Padded features as the quantizer sees them (OPQ rotates them)."""
        return x

    def fit(self, train):
        import faiss

        self.check_items(len(train), self.params["codewords"], "one per codeword of each k-means")
        x = self.padded(self.inputs(train.images, "image"))
        self.learn_transform(x)
        x = self.transform(x)
        pq = self.product_quantizer()
        pq.train(x)
        k = self.params["codewords"]
        self.arrays["centroids"] = faiss.vector_to_array(pq.centroids).reshape(self.books, k, -1)
        error = x - self.reconstruct(self.assign(x))
        return [{"epoch": 0, "loss": float(np.mean(np.sum(error.astype(np.float64) ** 2, axis=1)))}]

    def assign(self, x: np.ndarray) -> np.ndarray:
        """Nearest codeword of each sub-vector: (n, M) uint8."""
        cents = self.arrays["centroids"]
        subs = x.reshape(len(x), self.books, -1)
        codes = np.empty((len(x), self.books), np.uint8)
        for m in range(self.books):
            c = cents[m].astype(np.float64)
            dist = (c * c).sum(1)[None, :] - 2.0 * subs[:, m].astype(np.float64) @ c.T
            codes[:, m] = np.argmin(dist, axis=1)
        return codes

    def reconstruct(self, codes: np.ndarray) -> np.ndarray:
        cents = self.arrays["centroids"]
        return np.concatenate([cents[m][codes[:, m]] for m in range(self.books)], axis=1)

    def encode(self, data, modality="image", role="database"):
        x = self.transform(self.padded(self.inputs(data, modality)))
        if role == "query":
            return np.hstack([x, np.full((len(x), 1), -0.5, np.float32)])
        return self.assign(x)

    def codebooks(self) -> np.ndarray:
        """(M, K, dim + 1): codeword m, k in its block of dimensions, and ||c_mk||^2 in the last dimension."""
        cents = self.arrays["centroids"]
        m, k, sub = cents.shape
        books = np.zeros((m, k, self.dim + 1), np.float32)
        for i in range(m):
            books[i, :, i * sub:(i + 1) * sub] = cents[i]
        books[:, :, -1] = (cents.astype(np.float64) ** 2).sum(-1)
        return books
