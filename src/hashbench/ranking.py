"""Exact Hamming ranking: the one compiled kernel behind the evaluator's Hamming metrics and ``Index.search``.

The stable ranking of a database by Hamming distance (ties broken by ascending database position) is a counting
sort, because distances are small integers 0..bits. Per query the kernel makes two passes over the database:

1. key[i] = 2·popcount(q XOR x_i) + rel_i (rel_i: the query and item share a label; 0 when no labels are given),
   and a histogram of the keys per tile of TILE items. Summed, the histograms give for every distance d how many
   items lie at d and how many of those are relevant, so where each distance's items start in the stable ranking.
2. a scan in database order that hands each item whose distance is at most that of rank ``depth`` its rank,
   start[d] + (items of distance d seen so far): the first ``depth`` ranks are written out (ids and keys).

The relevant count among the first N items, for every requested cut-off N (``cuts``), comes from the ranked prefix
when N <= depth, else from the whole distances before N's plus a scan of the one tile where N's distance reaches
its N-th item (the tile histograms say which).

With ``topk`` > 0 the kernel also returns AP@topk (Σ_{k≤K} P@k·rel_k, summed in numpy's pairwise order over the
rank-ordered terms, so it equals ``np.sum`` of those terms bit for bit), the hits in the top K and, when
``depth`` is the whole database, the AP over the whole ranking. Nothing of size queries × database is allocated:
the per-query arrays are scratch rows, one per thread.

Threads: numba's ``prange`` over thread slots (each slot takes every nt-th query, so no two threads share a row);
the workqueue threading layer needs no extra library and is safe across ``fork``, and a lock keeps Python threads
from entering the kernel at the same time (which that layer does not allow).
"""
from __future__ import annotations

import os
import threading

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

from .errors import HashbenchError

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

__all__ = ["pack_words", "hamming_rank", "hamming_topk", "key_dtype"]

_LOCK = threading.Lock()
TILE = 4096  # items per tile histogram: a cut-off inside a distance scans one tile, not the database


def pack_words(bits: np.ndarray) -> np.ndarray:
    """bool (n, B) -> uint64 (n, ceil(B/64)) words, little-endian bit order, zero padding (B = 0: (n, 0))."""
    bits = np.asarray(bits, dtype=np.bool_)
    n, b = bits.shape
    nwords = -(-b // 64)
    packed = np.zeros((n, nwords * 8), np.uint8)
    if b:
        packed[:, :-(-b // 8)] = np.packbits(bits, axis=1, bitorder="little")
    return packed.view("<u8").astype(np.uint64, copy=False)


def key_dtype(bits: int):
    """The smallest unsigned type holding every key 2·distance + relevance."""
    return np.uint8 if 2 * bits + 1 <= 255 else np.uint16


def threads(workers: int | None) -> int:
    """Kernel threads for `workers` (None: numba's default, one per usable CPU)."""
    most = numba.config.NUMBA_NUM_THREADS
    return most if workers is None else max(1, min(int(workers), most))


# --------------------------------------------------------------------------------------------------- the kernel
@intrinsic
def _popcount(typingctx, x):
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])
    return sig, codegen


@njit(cache=True)
def _block_sum(a, lo, n):
    """numpy's sum of a block of at most 128: sequential below 8, else 8 accumulators then the rest."""
    if n < 8:
        res = -0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i, end = 8, n - n % 8
    while i < end:
        j = lo + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(cache=True)
def _pairwise_sum(a, lo, n):
    """numpy's pairwise summation (loops_utils.h: blocks of up to 128, larger ranges split in two halves whose
    first part is a multiple of 8), so the result equals np.sum(a[lo:lo+n]) exactly. An explicit stack instead of
    recursion (numba's cache cannot reload a recursive function called from a parallel one)."""
    if n <= 128:
        return _block_sum(a, lo, n)
    frames = np.empty((64, 3), np.int64)          # (lo, n, phase); depth <= log2(n / 128) + 1
    values = np.empty(64, np.float64)
    frames[0, 0], frames[0, 1], frames[0, 2] = lo, n, 0
    sp, vp = 1, 0
    while sp > 0:
        f_lo, f_n, phase = frames[sp - 1, 0], frames[sp - 1, 1], frames[sp - 1, 2]
        if f_n <= 128:
            values[vp] = _block_sum(a, f_lo, f_n)
            vp += 1
            sp -= 1
            continue
        half = f_n // 2
        half -= half % 8
        if phase == 2:                            # both halves summed: left + right
            values[vp - 2] = values[vp - 2] + values[vp - 1]
            vp -= 1
            sp -= 1
            continue
        frames[sp - 1, 2] = phase + 1
        frames[sp, 0], frames[sp, 1], frames[sp, 2] = (f_lo, half, 0) if phase == 0 else (f_lo + half, f_n - half, 0)
        sp += 1
    return values[0]


@njit(cache=True, boundscheck=False)
def _keys(qw, qm, qi, dw, dm, key, tiles, sub):
    """Pass 1: key[i] = 2·distance + relevance for every item, and the key histogram of every tile of TILE items
    (tiles (ntiles, nkeys)), counted in 4 interleaved sub-histograms `sub` (4, nkeys) so that consecutive equal
    keys do not wait on one counter."""
    n, nw, nl = dw.shape[0], dw.shape[1], dm.shape[1]
    if nw == 1 and nl == 1:        # <= 64 bits, <= 64 classes: a loop the compiler vectorises
        a, b = qw[qi, 0], qm[qi, 0]
        for i in range(n):
            key[i] = (_popcount(a ^ dw[i, 0]) << np.uint64(1)) | np.uint64((b & dm[i, 0]) != 0)
    elif nw == 1 and nl == 0:      # search: no labels
        a = qw[qi, 0]
        for i in range(n):
            key[i] = _popcount(a ^ dw[i, 0]) << np.uint64(1)
    else:
        for i in range(n):
            d = np.uint64(0)
            for w in range(nw):
                d += _popcount(qw[qi, w] ^ dw[i, w])
            r = np.uint64(0)
            for w in range(nl):
                if qm[qi, w] & dm[i, w]:
                    r = np.uint64(1)
            key[i] = (d << np.uint64(1)) | r
    nkeys = tiles.shape[1]
    for t in range(tiles.shape[0]):
        sub[:] = 0
        lo, hi = t * TILE, min(n, (t + 1) * TILE)
        hi4 = hi - (hi - lo) % 4
        for i in range(lo, hi4, 4):
            sub[0, key[i]] += 1
            sub[1, key[i + 1]] += 1
            sub[2, key[i + 2]] += 1
            sub[3, key[i + 3]] += 1
        for i in range(hi4, hi):
            sub[0, key[i]] += 1
        for j in range(nkeys):
            tiles[t, j] = sub[0, j] + sub[1, j] + sub[2, j] + sub[3, j]


@njit(cache=True, boundscheck=False)
def _prefix_relevant(key, tiles, d, m):
    """Relevant items among the first m items (in database order) of distance d: whole tiles from their
    histograms, then a scan of the tile where the m-th item lies."""
    seen, rel, t = 0, 0, 0
    while seen + tiles[t, 2 * d] + tiles[t, 2 * d + 1] < m:
        seen += tiles[t, 2 * d] + tiles[t, 2 * d + 1]
        rel += tiles[t, 2 * d + 1]
        t += 1
    i = t * TILE
    while seen < m:
        if key[i] >> 1 == d:
            seen += 1
            rel += key[i] & 1
        i += 1
    return rel


@njit(parallel=True, cache=True, boundscheck=False)
def _rank(qw, dw, qm, dm, nkeys, depth, cuts, topk, ids, ranked_out, hist, grid_rel, ap, keys, tiles, ranked, terms):
    """Every query: pass 1 (`_keys`), the counting-sort scan for the first `depth` ranks, the cut-offs, AP.

    Outputs per query qi: hist[qi] (nkeys) key counts; ids[qi, :depth] item positions in rank order (when
    ids has columns); ranked_out[qi, :depth] their keys (when it has columns); grid_rel[qi, c] the relevant items
    among the first cuts[c] (ascending); ap[qi] = (AP@topk sum, hits in the top topk, AP sum over the whole ranking)
    when topk > 0 (the last only when depth = n). keys (nt, n), tiles (nt, ntiles, nkeys), ranked (nt, depth),
    terms (nt, depth or 0): scratch, one per thread slot."""
    nq, n = qw.shape[0], dw.shape[0]
    nb = nkeys // 2
    ncut = cuts.shape[0]
    nt = keys.shape[0]
    for t in prange(nt):
        key, tile, rk, term = keys[t], tiles[t], ranked[t], terms[t]
        sub = np.zeros((4, nkeys), np.int64)
        start = np.zeros(nb + 1, np.int64)     # items closer than each distance (start[nb] = n)
        rstart = np.zeros(nb + 1, np.int64)    # ... and the relevant ones among them
        pos = np.zeros(nb, np.int64)
        for qi in range(t, nq, nt):
            _keys(qw, qm, qi, dw, dm, key, tile, sub)
            h = hist[qi]
            h[:] = 0
            for j in range(tile.shape[0]):
                for c in range(nkeys):
                    h[c] += tile[j, c]
            for d in range(nb):
                start[d + 1] = start[d] + h[2 * d] + h[2 * d + 1]
                rstart[d + 1] = rstart[d] + h[2 * d + 1]
                pos[d] = 0
            # pass 2: the first `depth` ranks. Rank depth - 1 lies at distance dk, whose first mk items are in.
            dk = 0
            while depth > 0 and start[dk + 1] < depth:
                dk += 1
            mk = depth - start[dk]
            want_ids = ids.shape[1] > 0
            for i in range(n):
                k = key[i]
                e = np.int64(k >> 1)
                if e > dk:
                    continue
                p = pos[e]
                if e == dk and p == mk:
                    continue
                pos[e] = p + 1
                rank = start[e] + p
                rk[rank] = k
                if want_ids:
                    ids[qi, rank] = i
            if ranked_out.shape[1] > 0:
                for r in range(depth):
                    ranked_out[qi, r] = rk[r]
            # relevant items among the first N: inside the ranked prefix from its running count, beyond it from
            # whole distances and one tile scan
            cum, c = 0, 0
            for r in range(depth):
                rel = rk[r] & 1
                cum += rel
                if topk > 0:
                    term[r] = cum / (r + 1) if rel else 0.0
                    if r == topk - 1:
                        ap[qi, 1] = cum
                while c < ncut and cuts[c] == r + 1:
                    grid_rel[qi, c] = cum
                    c += 1
            d = 0
            while c < ncut:
                while start[d + 1] < cuts[c]:
                    d += 1
                grid_rel[qi, c] = rstart[d] + _prefix_relevant(key, tile, d, cuts[c] - start[d])
                c += 1
            if topk > 0:                   # AP as the definition sums it: numpy's order over the rank-ordered terms
                ap[qi, 0] = 0.0 + _pairwise_sum(term, 0, topk)
                if depth == n:
                    ap[qi, 2] = 0.0 + _pairwise_sum(term, 0, n)


def hamming_rank(qw, dw, qm, dm, bits, *, depth, cuts=(), topk=0, want_ids=False, want_keys=False, workers=None):
    """Run the kernel over all queries (packed with `pack_words`; qm/dm may have 0 words: no relevance).

    Returns a dict: hist (nq, 2·bits+2) key counts, grid_rel (nq, len(cuts)), ids (nq, depth) when want_ids,
    keys (nq, depth) when want_keys, ap (nq, 3) when topk > 0."""
    nq, n = qw.shape[0], dw.shape[0]
    nkeys = 2 * bits + 2
    kdt = key_dtype(bits)
    cuts = np.asarray(cuts, np.int64)
    if not 0 <= topk <= depth <= n or (len(cuts) and (cuts.min() < 1 or cuts.max() > n or (np.diff(cuts) < 0).any())):
        raise ValueError(f"hamming_rank: topk {topk} <= depth {depth} <= n {n} and ascending cuts in 1..n needed")
    nt = min(threads(workers), max(nq, 1))
    out = {"hist": np.zeros((nq, nkeys), np.int64), "grid_rel": np.zeros((nq, len(cuts)), np.int64),
           "ids": np.zeros((nq, depth if want_ids else 0), np.int64),
           "keys": np.zeros((nq, depth if want_keys else 0), kdt),
           "ap": np.zeros((nq, 3), np.float64)}
    scratch = (np.empty((nt, n), kdt), np.empty((nt, -(-n // TILE), nkeys), np.int32), np.empty((nt, depth), kdt),
               np.empty((nt, depth if topk > 0 else 0), np.float64))
    with _LOCK:
        before = numba.get_num_threads()
        numba.set_num_threads(nt)
        try:
            _rank(qw, dw, qm, dm, nkeys, depth, cuts, topk, out["ids"], out["keys"], out["hist"], out["grid_rel"],
                  out["ap"], *scratch)
        finally:
            numba.set_num_threads(before)
    return out


def hamming_topk(qw, dw, bits, k, workers=None):
    """Exact top-k by Hamming distance, ties by database position: (positions (nq, k) int64, distances (nq, k)
    int32). k is at most the database size."""
    if not 1 <= k <= dw.shape[0]:
        raise HashbenchError(f"k={k} is not allowed; use 1..{dw.shape[0]} (the database size)")
    empty = np.zeros((qw.shape[0], 0), np.uint64), np.zeros((dw.shape[0], 0), np.uint64)
    out = hamming_rank(qw, dw, *empty, bits, depth=k, want_ids=True, want_keys=True, workers=workers)
    return out["ids"], (out["keys"] >> 1).astype(np.int32)
