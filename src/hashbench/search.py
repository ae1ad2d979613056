"""Search database codes with their item ids, with the evaluator's ranking; export them to FAISS.

``Index(codes, ids)`` holds ±1 binary codes (n, bits), or for quantized methods codeword assignments (n, M) with
their codebooks (M, K, D). ``search(queries, k)`` returns the ids and distances of the top k per query, ranked
exactly as the evaluator ranks: Hamming distance ascending for binary codes (the kernel of ``hashbench.ranking``),
the asymmetric score q · Σ_m C[m, b_m] descending for quantized codes (``evaluation.aqd_topk``), ties broken by
database position in both. For quantized codes the "distances" are those scores (larger is closer), as FAISS's
inner-product indexes report them. ``search(..., score="l2")`` ranks quantized codes by the asymmetric squared L2
distance |q - x_i|^2 to the reconstructions x_i = sum_m C[m, b_m] instead (PQ's ADC), through the same ranking with
the per-item term -|x_i|^2 / 2: the evaluator's (the papers') score is the inner product, but features that are not
normalised (WSDHQ's tanh outputs) make an item's own reconstruction rarely its top inner product, so near-duplicate
search wants L2.

``to_faiss`` builds the FAISS index users deploy hash codes with, ids mapped:
- binary, ``flat``: ``IndexBinaryFlat`` (exact); ``ivf``: ``IndexBinaryIVF`` (``nlist`` binary k-means lists trained
  on a seeded sample of 64 items per list, ``nprobe`` lists searched); ``hnsw``: ``IndexBinaryHNSW``. Codes are stored as ``np.packbits(codes >= 0, axis=1)`` bytes,
  zero-padded to a multiple of 8 bits; queries are packed the same way (``pack_for_faiss``).
- quantized, ``flat`` only: an additive-quantizer index (``IndexResidualQuantizer`` with inner-product metric)
  whose codebooks are ours and whose codes are our assignments (nothing retrained), so FAISS scores
  q · Σ_m C[m, b_m] as the evaluator does. K must be a power of two (FAISS packs log2(K) bits per codebook).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .errors import HashbenchError
from .evaluation import aqd_topk
from .ranking import hamming_topk

__all__ = ["Index", "Neighbours", "to_faiss", "pack_for_faiss", "FAISS_KINDS"]

FAISS_KINDS = ("flat", "ivf", "hnsw")
SCORES = ("inner", "l2")


class Neighbours(NamedTuple):
    """Top-k of each query: item ids (nq, k) int64 and distances (nq, k): Hamming distances (int32), or for
    quantized codes the asymmetric scores (float32, larger is closer), or with score="l2" squared L2 distances
    (float32, smaller is closer)."""

    ids: np.ndarray
    distances: np.ndarray


def _fail(msg):
    raise HashbenchError(msg)


def pack_for_faiss(codes, rows: int = 1 << 20) -> np.ndarray:
    """±1 codes (n, bits) (0 counts as +1, as in the evaluator) -> uint8 (n, ceil(bits/8)) as FAISS binary indexes
    take them: np.packbits(codes >= 0, axis=1), zero padding. Packed `rows` at a time (no (n, bits) temporary)."""
    a = np.asarray(codes)
    if a.ndim != 2 or a.dtype.kind not in "biuf":
        _fail(f"codes: shape {a.shape} dtype {a.dtype} is not allowed; use ±1 codes (n, bits)")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        _fail("codes: NaN or inf given; use ±1 codes")
    out = np.empty((len(a), -(-a.shape[1] // 8)), np.uint8)
    for s in range(0, len(a), rows):
        block = a[s:s + rows]
        out[s:s + rows] = np.packbits(block if block.dtype == np.bool_ else block >= 0, axis=1)
    return out


def _words(packed: np.ndarray) -> np.ndarray:
    """Packed bytes (n, nbytes) as uint64 words (n, ceil(nbytes/8)) for the ranking kernel (a view when nbytes is a
    multiple of 8; the Hamming distance does not depend on how bits are laid out, only that both sides agree)."""
    nbytes = packed.shape[1]
    if nbytes % 8:
        padded = np.zeros((len(packed), nbytes + (-nbytes) % 8), np.uint8)
        padded[:, :nbytes] = packed
        packed = padded
    return np.ascontiguousarray(packed).view(np.uint64)


class Index:
    """Database codes with their item ids (and optional file names), searched exactly as the evaluator ranks."""

    def __init__(self, codes, ids=None, *, codebooks=None, names=None, method: str = ""):
        codes = np.asarray(codes)
        if codes.ndim != 2 or len(codes) == 0:
            _fail(f"codes: shape {codes.shape} is not allowed; use a non-empty (n, bits) or (n, M) array")
        self._set_items(len(codes), ids, names)
        self.method = method
        self.quantized = codebooks is not None
        if self.quantized:
            self.codebooks = np.asarray(codebooks, np.float32)
            if self.codebooks.ndim != 3 or codes.shape[1] != self.codebooks.shape[0] or codes.dtype.kind not in "iu":
                _fail(f"codes: {codes.dtype} {codes.shape} with codebooks {self.codebooks.shape} is not allowed; use "
                      f"integer assignments (n, M) for codebooks (M, K, D)")
            self.assign = codes
            self.dim = self.codebooks.shape[2]
            self._neg_half_norms = None                  # for score="l2", computed on first use
        else:
            self._set_binary(pack_for_faiss(codes), codes.shape[1])

    def _set_binary(self, packed, bits) -> None:
        self.quantized, self.codebooks = False, None
        self.bits, self.packed, self.words = bits, packed, _words(packed)

    @classmethod
    def from_packed(cls, packed, bits: int, ids=None, *, names=None, method: str = "") -> Index:
        """An index of binary codes already packed as FAISS takes them (``pack_for_faiss``): uint8
        (n, ceil(bits/8)); no ±1 array of (n, bits) is ever made."""
        packed = np.asarray(packed)
        if packed.ndim != 2 or packed.dtype != np.uint8 or packed.shape[1] != -(-bits // 8) or len(packed) == 0:
            _fail(f"packed: {packed.dtype} {packed.shape} is not allowed; use uint8 (n, {-(-bits // 8)}) for {bits} bits")
        index = cls.__new__(cls)
        index.method = method
        index._set_binary(packed, bits)
        index._set_items(len(packed), ids, names)
        return index

    def _set_items(self, n, ids, names) -> None:
        self.ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids)
        if self.ids.shape != (n,) or self.ids.dtype.kind not in "iu":
            _fail(f"ids: shape {self.ids.shape} dtype {self.ids.dtype} is not allowed; use ({n},) integers")
        self.ids = self.ids.astype(np.int64, copy=False)
        self.names = None if names is None else np.asarray(names, dtype=object)
        if self.names is not None and self.names.shape != (n,):
            _fail(f"names: {self.names.shape} is not allowed; use one name per item ({n},)")

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        kind = f"quantized, codebooks {self.codebooks.shape}" if self.quantized else f"{self.bits}-bit binary"
        return f"Index({len(self)} items, {kind})"

    def _queries(self, queries) -> np.ndarray:
        q = np.asarray(queries)
        if q.ndim == 1:
            q = q[None, :]
        width = self.dim if self.quantized else self.bits
        what = f"{self.dim}-d query features" if self.quantized else f"{self.bits}-bit ±1 codes"
        if q.ndim != 2 or q.shape[1] != width or q.dtype.kind not in "biuf":
            _fail(f"queries: shape {q.shape} is not allowed; this index takes {what} (n, {width})")
        if len(q) == 0:
            _fail(f"queries: empty batch; give at least one row of {what}")
        return q

    def search(self, queries, k: int = 10, *, score: str = "inner", workers: int | None = None) -> Neighbours:
        """Top k (at most the database size) per query: binary codes take ±1 query codes, quantized ones query
        features (the method's encode with role="query"). `score` (quantized codes): "inner", the evaluator's
        asymmetric inner product, or "l2", the asymmetric squared L2 distance."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            _fail(f"k={k!r} is not allowed; use a positive int")
        if score not in SCORES:
            _fail(f"score={score!r} is not allowed; use one of {', '.join(SCORES)}")
        if score == "l2" and not self.quantized:
            _fail("score='l2' applies to quantized codes; binary codes are ranked by Hamming distance")
        q = self._queries(queries)
        k = min(int(k), len(self))
        if score == "l2":
            positions, scores = aqd_topk(q, self.assign, self.codebooks, k, bias=self._half_norms(), workers=workers)
            sq = np.einsum("ij,ij->i", q.astype(np.float64), q.astype(np.float64))[:, None]
            distances = (sq - 2.0 * scores).astype(np.float32)     # |q|^2 - 2 (q . x - |x|^2 / 2) = |q - x|^2
        elif self.quantized:
            positions, distances = aqd_topk(q, self.assign, self.codebooks, k, workers=workers)
        else:
            positions, distances = hamming_topk(_words(pack_for_faiss(q)), self.words, self.bits, k, workers)
        return Neighbours(self.ids[positions], distances)

    def _half_norms(self, rows: int = 1 << 16) -> np.ndarray:
        """-|x_i|^2 / 2 of every item's reconstruction (float32), computed once, a block of rows at a time."""
        if self._neg_half_norms is None:
            books = self.codebooks.astype(np.float64)
            out = np.empty(len(self), np.float32)
            for r0 in range(0, len(self), rows):
                part = self.assign[r0:r0 + rows]
                x = books[0][part[:, 0]]
                for m in range(1, books.shape[0]):
                    x += books[m][part[:, m]]
                out[r0:r0 + rows] = -0.5 * np.einsum("ij,ij->i", x, x)
            self._neg_half_norms = out
        return self._neg_half_norms

    def name(self, item_id: int) -> str | None:
        """The file name of an item, when the codes file has names."""
        if self.names is None:
            return None
        where = np.flatnonzero(self.ids == item_id)
        return str(self.names[where[0]]) if len(where) else None


# ------------------------------------------------------------------------------------------------------------ FAISS
def _binary_faiss(index: Index, kind: str, nlist: int | None, nprobe: int, hnsw_m: int, seed: int):
    import faiss

    d = 8 * -(-index.bits // 8)
    data = index.packed
    if kind == "flat":
        out = faiss.IndexBinaryIDMap(faiss.IndexBinaryFlat(d))
    elif kind == "hnsw":
        out = faiss.IndexBinaryIDMap(faiss.IndexBinaryHNSW(d, hnsw_m))
    else:
        nlist = nlist or max(1, min(4096, int(4 * np.sqrt(len(index)))))
        if not 1 <= nlist <= len(index):
            _fail(f"nlist={nlist} is not allowed for {len(index)} items; use 1..{len(index)}")
        ivf = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(d), d, nlist)
        ivf.cp.seed = seed
        sample = np.random.default_rng(seed).choice(len(index), size=min(len(index), 64 * nlist), replace=False)
        ivf.train(data[np.sort(sample)])
        ivf.nprobe = min(nprobe, nlist)
        out = ivf
    out.add_with_ids(data, index.ids)
    return out


def _quantized_faiss(index: Index):
    import faiss

    m, k, d = index.codebooks.shape
    nbits = int(k).bit_length() - 1
    if k != 1 << nbits:
        _fail(f"codebooks have K={k} codewords; FAISS additive quantizers need a power of two")
    inner = faiss.IndexResidualQuantizer(d, m, nbits, faiss.METRIC_INNER_PRODUCT)
    faiss.copy_array_to_vector(np.ascontiguousarray(index.codebooks, np.float32).ravel(), inner.rq.codebooks)
    inner.rq.is_trained = True
    inner.is_trained = True
    packed = np.zeros((len(index), inner.code_size), np.uint8)
    assign = np.ascontiguousarray(index.assign, np.int32)  # held here: swig_ptr does not keep the array alive
    inner.rq.pack_codes(len(index), faiss.swig_ptr(assign), faiss.swig_ptr(packed))
    out = faiss.IndexIDMap(inner)                       # keeps a reference to `inner`
    out.add_sa_codes(packed, index.ids)
    return out


def to_faiss(index: Index, kind: str = "flat", *, nlist: int | None = None, nprobe: int = 16, hnsw_m: int = 32,
             seed: int = 0):
    """A FAISS index of `index`'s codes and ids (see the module docstring); write it with faiss.write_index_binary
    (binary) or faiss.write_index (quantized), or `write_faiss`."""
    if kind not in FAISS_KINDS:
        _fail(f"kind: {kind!r} is not allowed; use {', '.join(FAISS_KINDS)}")
    if index.quantized:
        if kind != "flat":
            _fail(f"kind: {kind!r} is for binary codes; quantized codes export as flat (exact, our codebooks)")
        return _quantized_faiss(index)
    return _binary_faiss(index, kind, nlist, nprobe, hnsw_m, seed)


def write_faiss(faiss_index, path) -> None:
    import faiss

    if isinstance(faiss_index, faiss.IndexBinary):
        faiss.write_index_binary(faiss_index, str(path))
    else:
        faiss.write_index(faiss_index, str(path))
