"""Additive (composite) quantization helpers shared by deep quantization methods (WSDHQ; DQN/DVSQ lineage).

A quantizer is M codebooks of K codewords each, ``C`` of shape (M, K, D); item codes are (n, M) integers and the
reconstruction is x_hat = sum_m C[m, codes[:, m]]. Codewords are dense (each spans all D dimensions) once the
least-squares update has run, even when k-means initialised them block-diagonally (product-quantization style).

The code-assignment objective may be weighted by a PSD metric W (D, D): ||r - x_hat||_W^2 = (r - x_hat)^T W (r - x_hat).
WSDHQ uses W = sum_t e_t e_t^T over the tag embeddings, i.e. sum_t (e_t^T (r - x_hat))^2; W = None is plain L2.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from .errors import HashbenchError


def check_codebook_bits(method: str, bits, codewords: int = 256) -> int:
    """bits = books x log2(codewords): returns the number of books, or stops with one line."""
    per_book = int(codewords).bit_length() - 1
    if isinstance(bits, bool) or not isinstance(bits, int) or bits < per_book or bits % per_book or bits > 1024:
        raise HashbenchError(f"bits: {bits!r} is not allowed for {method} with {codewords} codewords per book; use a "
                             f"multiple of {per_book} up to 1024 (bits = books x log2(codewords))")
    return bits // per_book


def subspace_blocks(dim: int, m: int) -> list[np.ndarray]:
    """M contiguous blocks of dimensions (sizes differ by at most one when M does not divide D).

    Deviation: the official WSDHQ k-means start uses blocks of D // M dimensions and leaves the remainder out; here
    every dimension belongs to a block. It only affects the initial codebooks (the least-squares update then makes
    every codeword dense)."""
    if not 1 <= m <= dim:
        raise HashbenchError(f"codebooks: {m} codebooks do not fit a {dim}-d feature; use at most {dim}")
    return np.array_split(np.arange(dim), m)


def kmeans_init(features: np.ndarray, m: int, k: int, seed: int) -> np.ndarray:
    """Per-subspace MiniBatchKMeans(k) on the feature blocks, placed block-diagonally into (M, K, D) float32.

    With fewer items than codewords the centres are items drawn with replacement (seeded)."""
    from sklearn.cluster import MiniBatchKMeans

    x = np.asarray(features, dtype=np.float32)
    n, dim = x.shape
    books = np.zeros((m, k, dim), np.float32)
    rng = np.random.default_rng(seed)
    for i, block in enumerate(subspace_blocks(dim, m)):
        sub = x[:, block]
        if n < k:
            centres = sub[rng.choice(n, k, replace=True)]
        else:
            km = MiniBatchKMeans(n_clusters=k, random_state=seed + i, n_init=3, batch_size=1024, max_iter=100)
            centres = km.fit(sub).cluster_centers_
        books[i][:, block] = centres
    return books


def reconstruct(books: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """sum_m C[m, codes[:, m]]; a negative code means "no codeword" (contributes 0)."""
    codes = np.asarray(codes)
    out = np.zeros((codes.shape[0], books.shape[2]), np.float32)
    for m in range(books.shape[0]):
        c = codes[:, m].astype(np.int64)
        ok = c >= 0
        out[ok] += books[m, c[ok]]
    return out


def objective(features: np.ndarray, books: np.ndarray, codes: np.ndarray, metric: np.ndarray | None = None) -> float:
    """Mean over items of ||r - x_hat||_W^2 (W = identity when `metric` is None)."""
    err = np.asarray(features, np.float64) - reconstruct(books, codes)
    if metric is None:
        return float(np.mean(np.sum(err * err, axis=1)))
    return float(np.mean(np.sum((err @ np.asarray(metric, np.float64)) * err, axis=1)))


def icm_sweep(features: np.ndarray, books: np.ndarray, codes: np.ndarray, metric: np.ndarray | None = None,
              order=None, chunk: int = 4096) -> np.ndarray:
    """One iterated-conditional-modes sweep: for each codebook m (in `order`), every item takes the codeword that
    minimises ||r - sum_{m' != m} C[m', h_m'] - C[m, k]||_W^2 given the others. Updates and returns `codes` (int64,
    -1 = unset). Each step is an exact coordinate minimisation, so the objective never increases."""
    r = np.asarray(features, np.float32)
    m_books, _, dim = books.shape
    w = np.eye(dim, dtype=np.float32) if metric is None else np.asarray(metric, np.float32)
    order = range(m_books) if order is None else order
    recon = reconstruct(books, codes)
    for m in order:
        wc = books[m] @ w  # (K, D); W is symmetric
        norms = np.einsum("kd,kd->k", wc, books[m])  # c_k^T W c_k
        for start in range(0, len(r), chunk):
            s = slice(start, start + chunk)
            cur = codes[s, m]
            own = np.where(cur[:, None] >= 0, books[m][np.maximum(cur, 0)], 0.0)
            residual = r[s] - recon[s] + own
            score = norms[None, :] - 2.0 * (residual @ wc.T)
            best = np.argmin(score, axis=1)
            recon[s] += books[m][best] - own
            codes[s, m] = best
    return codes


def icm_encode(features: np.ndarray, books: np.ndarray, metric: np.ndarray | None = None, sweeps: int = 3,
               rng: np.random.Generator | None = None) -> np.ndarray:
    """Codes by ICM from h = 0 (no codeword): `sweeps` sweeps, codebooks in a random order per sweep.
    Returns uint8 codes when K <= 256, else uint16."""
    rng = np.random.default_rng(0) if rng is None else rng
    m_books, k, _ = books.shape
    codes = np.full((len(features), m_books), -1, np.int64)
    for _ in range(sweeps):
        icm_sweep(features, books, codes, metric, order=rng.permutation(m_books))
    return codes.astype(np.uint8 if k <= 256 else np.uint16)


def one_hot_codes(codes: np.ndarray, k: int) -> sp.csr_matrix:
    """H (n, M*K): one 1 per codebook and item."""
    codes = np.asarray(codes, np.int64)
    n, m = codes.shape
    cols = (codes + np.arange(m)[None, :] * k).ravel()
    return sp.csr_matrix((np.ones(n * m, np.float64), (np.repeat(np.arange(n), m), cols)), shape=(n, m * k))


def update_codebooks(features: np.ndarray, codes: np.ndarray, k: int, reg: float = 1e-3,
                     previous: np.ndarray | None = None) -> np.ndarray:
    """Regularised least squares C = (H^T H + reg I)^-1 H^T R, as (M, K, D) float32.

    Codewords whose solved row has squared norm < 1e-8 (unused ones) keep their `previous` value."""
    r = np.asarray(features, np.float64)
    h = one_hot_codes(codes, k)
    hth = (h.T @ h).toarray()
    hth[np.diag_indices_from(hth)] += reg
    sol = scipy.linalg.solve(hth, np.asarray(h.T @ r), assume_a="pos")
    m = codes.shape[1]
    books = sol.reshape(m, k, r.shape[1]).astype(np.float32)
    if previous is not None:
        dead = np.sum(books.astype(np.float64) ** 2, axis=2) < 1e-8
        books[dead] = previous[dead]
    return books
