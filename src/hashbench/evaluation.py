"""The project's one retrieval evaluator: plain numpy arrays in, plain JSON-serialisable dicts out.

Definition (the evaluation spec, evaluation.md section 2; summarised in the README's "Evaluation"):

- **Relevance**: query q and database item x are relevant iff they share at least one label. Labels are multi-hot
  arrays (n, C) (bool/uint8; any non-zero entry counts as "has the label"); single-label data is one-hot. An item
  whose label row is all zero is never relevant.
- **Ranking**: the database is sorted by a score, ties broken by ascending database index (a *stable* sort).
  - Binary codes (``evaluate_hamming``): ±1 codes (int8 or float, 0 is mapped to +1, any number of bits); Hamming
    distance ascending.
  - Quantized codes (``evaluate_aqd``): the asymmetric score descending, score(q, x) = q · x̂ with
    x̂ = Σ_m C[m, b_m] (codebooks C (M, K, D), assignments b (n, M)). It is computed with a per-query lookup table
    T[m, k] = q · C[m, k] (dot product in float64, stored as float32) and a gather-sum in float32 in the order
    m = 0..M-1, so equal assignments always tie exactly. This covers additive codebooks (WSDHQ) and product
    quantizers with block-sparse codewords (GPQ).
- **AP@K** = (1/N_q) Σ_{k≤K} P@k · rel_k with N_q = number of relevant items in the top K ("retrieved"
  normaliser). The sum runs over all k ≤ K in rank order (float64, numpy's sum of that row). Queries with N_q = 0
  count as AP = 0 (``zero="count"``) or are left out of the mean (``zero="skip"``, WSDHQ/thulab protocol; when every
  query is left out, map is 0.0 and n_query_scored 0).
  K is an int, or None/"all" for the whole database; K larger than the database means the whole database.
- **map_all**: the same AP over the whole ranking, always with ``zero="count"``.
- **precision_at_n**: mean over queries of P@N (relevant in the top N / N) on the stable ranking.
- **pr** (Hamming, by radius r = 0..bits): per query the retrieved set is {x : d(q, x) ≤ r}; precision = relevant
  retrieved / retrieved (an empty retrieved set counts as precision 0); recall = relevant retrieved / relevant in
  the database, averaged over queries that have at least one relevant item. ``precision_radius`` is that precision
  at r = ``radius`` (P@H≤2 by default).
- **pr** (AQD, or Hamming with ``pr="rank"``): precision and recall of the top N for N on the rank grid.
- Means over queries are exactly rounded (math.fsum) so they do not depend on chunking or the number of workers.

Implementation: nothing of size n_query × n_database is ever allocated.
- Hamming: the compiled ranking kernel of ``hashbench.ranking``, the same one ``Index.search`` uses: packed bits,
  popcount and packed label bitmasks, then a counting sort by distance (the stable order by construction) that
  ranks only the top K (the whole database with ``map_all=True``); the relevant count at every grid point beyond
  that comes from per-tile key histograms and one tile scan. Its threads are the kernel's own (``workers``).
- AQD: queries in chunks spread over ``workers`` (forked processes for large jobs on Linux, threads otherwise). Each chunk builds unique int64 keys (score, index,
  relevance bit), the stable order by construction; with ``map_all=True`` they are sorted in full, otherwise only
  partitioned: largest grid point below n first, each next partition on the prefix the previous one left, K last.
  Because the keys are unique, the first N columns are then exactly the stable top N for every such N. Only the top
  K are sorted (AP@K, P@N and PR for N <= K), and for the grid points N > K the relevant items among the first N
  columns are counted. Scratch arrays are reused per worker, because on first touch a large fresh array costs page
  faults that are slower than the work itself.
"""
from __future__ import annotations

import math
import multiprocessing
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from hashbench.errors import HashbenchError
from hashbench.ranking import hamming_rank, pack_words

__all__ = ["evaluate_hamming", "evaluate_aqd", "aqd_topk", "mean_average_precision", "default_rank_grid"]

_BLOCK_PAIRS = 2**18  # query x database pairs per cache block (AQD keys)
_WORK_BYTES = 192 * 2**20  # working memory per query chunk and worker (AQD)
_HAMMING_ROWS = 256  # queries per call of the Hamming kernel (progress bar steps; the kernel allocates per call)
# query x item pairs below which worker processes cost more than they save: 2^25 pairs are ~0.2 s of one core's work,
# starting and joining the pool took 15-20 ms (2 workers, a 40 x 2,000 case)
_FORK_MIN_PAIRS = 2**25


# ----------------------------------------------------------------------------------------------------------- checks
def _fail(msg):
    raise HashbenchError(msg)


def _check_zero(zero):
    if zero not in ("count", "skip"):
        _fail(f"zero={zero!r} is not allowed; use 'count' (zero-relevant queries score 0) or 'skip' (left out)")


def _resolve_topk(topk, n):
    if topk is None or (isinstance(topk, str) and topk == "all"):
        return n
    if isinstance(topk, (bool, np.bool_)) or not isinstance(topk, (int, np.integer)):
        _fail(f"topk={topk!r} is not allowed; use a positive int, None or 'all'")
    if topk < 1:
        _fail(f"topk={topk!r} is not allowed; use a positive int, None or 'all'")
    return int(min(int(topk), n))


def default_rank_grid(n):
    """1, 2, 5, 10, 20, 50, ... below n, then n itself (the whole database)."""
    grid, base = [], 1
    while base < n:
        grid.extend(v for v in (base, 2 * base, 5 * base) if v < n)
        base *= 10
    grid.append(int(n))
    return grid


def _rank_grid(pn_points, n):
    if pn_points is None:
        return default_rank_grid(n)
    try:
        pts = [p for p in pn_points]
    except TypeError:
        pts = None
    if not pts or any(isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, np.integer)) or p < 1 for p in pts):
        _fail(f"pn_points={pn_points!r} is not allowed; use None or a non-empty list of positive ints")
    return sorted({int(min(p, n)) for p in pts})


def _labels(labels, name, n_rows, n_classes=None):
    a = np.asarray(labels)
    if a.ndim != 2:
        _fail(f"{name} has shape {a.shape}; expected a 2-D multi-hot array (n, classes)")
    if a.shape[0] != n_rows:
        _fail(f"{name} has {a.shape[0]} rows; expected {n_rows} (one per code)")
    if n_classes is not None and a.shape[1] != n_classes:
        _fail(f"{name} has {a.shape[1]} classes but the query labels have {n_classes}; both need the same classes")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        _fail(f"{name} contains NaN or inf; expected a multi-hot 0/1 array")
    return a != 0


def _words(bits):
    """bool (n, B) -> (n, words) packed bits, little-endian bit order: one uint8/16/32 word when B <= 32,
    otherwise uint64 words."""
    n = bits.shape[0]
    packed = np.packbits(bits, axis=1, bitorder="little")
    nbytes = packed.shape[1]
    size = 1 if nbytes <= 1 else 2 if nbytes <= 2 else 4 if nbytes <= 4 else 8
    nwords = -(-max(nbytes, 1) // size)
    out = np.zeros((n, nwords * size), np.uint8)
    out[:, :nbytes] = packed
    return out.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[size])


def _sign_bits(codes, name):
    a = np.asarray(codes)
    if a.ndim != 2:
        _fail(f"{name} has shape {a.shape}; expected a 2-D array (n, bits) of ±1 codes")
    if a.dtype == np.bool_:
        return a
    if a.dtype.kind not in "iuf":
        _fail(f"{name} has dtype {a.dtype}; expected ±1 codes as int8 or float")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        _fail(f"{name} contains NaN or inf; expected ±1 codes")
    return a >= 0  # 0 is mapped to +1


def _workers(workers):
    if workers is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover
            return max(1, os.cpu_count() or 1)
    if isinstance(workers, (bool, np.bool_)) or not isinstance(workers, (int, np.integer)) or workers < 1:
        _fail(f"workers={workers!r} is not allowed; use None (one per usable CPU) or a positive int")
    return int(workers)


# ----------------------------------------------------------------------------------------------------- primitives
def _relevance(qmask, dmask, out, tmp, spare):
    """Fill bool out (nq, n): query and item share a label. qmask/dmask are packed label-bit words (``_words``);
    tmp (nq, n) in their dtype and bool spare (nq, n) are scratch."""
    for w in range(qmask.shape[1]):
        np.bitwise_and(qmask[:, w, None], dmask[None, :, w], out=tmp)
        if w == 0:
            np.not_equal(tmp, 0, out=out)
        else:
            out |= np.not_equal(tmp, 0, out=spare)
    return out


def _ap_rows(srel, buffers):
    """AP sums, hit counts and running hit counts of rank-ordered relevance rows (nq, K): Σ_k P@k·rel_k (numpy row
    sum), N_q and cumsum(rel) (nq, K); the (nq, K) temporaries are the worker's reused scratch."""
    q, k = srel.shape
    cum = np.cumsum(srel, axis=1, dtype=np.int64, out=_scratch(buffers, "ap_cum", (q, k), np.int64))
    terms = np.divide(cum, np.arange(1, k + 1, dtype=np.float64), out=_scratch(buffers, "ap_terms", (q, k), np.float64))
    terms *= srel
    return terms.sum(axis=1), cum[:, -1].copy(), cum  # K >= 1 always


def _fmean(values):
    values = list(values)
    return math.fsum(values) / len(values) if values else 0.0


def _chunks(nq, n, bytes_per_pair):
    rows = int(max(1, min(256, _WORK_BYTES // max(1, bytes_per_pair * n))))
    return [(s, min(nq, s + rows)) for s in range(0, nq, rows)]


def _scratch(buffers, name, shape, dtype):
    """An uninitialised array of `shape`: a row-prefix view of a buffer this worker reuses from chunk to chunk.
    (Freshly allocated large arrays cost a page fault per 4 KiB on first touch, which on a busy machine was
    1-30 ns per query x item pair, more than the work itself.)"""
    buf = buffers.get(name)
    if buf is None or buf.dtype != dtype or buf.shape[1:] != tuple(shape[1:]) or buf.shape[0] < shape[0]:
        buf = buffers[name] = np.empty(shape, dtype)
    return buf[:shape[0]]


def _run_chunks(fn, chunks, workers, progress, desc, pairs):
    """fn(r0, r1, buffers) for every chunk, in order; `buffers` is a dict of scratch arrays private to the worker.
    The AQD path's large jobs run in forked worker processes: numpy's take, partition and sort hold the GIL for
    part of their work, and in paired runs (600 queries x 193,734 items, 2 workers, the same CPU time) threads took
    11.0-11.9 s wall against 8.5-8.6 s for processes. Elsewhere threads are used. (The Hamming kernel runs its own
    threads, without the GIL.)"""
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(chunks), desc=desc, unit="chunk")
    workers = min(workers, len(chunks))
    try:
        if workers <= 1:
            buffers = {}
            results = [fn(*c, buffers) for c in _ticking(chunks, bar)]
        elif _can_fork() and pairs >= _FORK_MIN_PAIRS:
            results = _run_forked(fn, chunks, workers, bar)
        else:
            local = threading.local()

            def call(c):
                if not hasattr(local, "buffers"):
                    local.buffers = {}
                return fn(*c, local.buffers)
            with ThreadPoolExecutor(workers) as ex:
                results = list(_ticking(ex.map(call, chunks), bar))
    finally:
        if bar is not None:
            bar.close()
    return results


def _ticking(items, bar):
    for item in items:
        yield item
        if bar is not None:
            bar.update(1)


def _can_fork():
    # fork start method only on Linux (macOS lists it but system frameworks are not fork-safe); daemonic processes
    # (e.g. pool workers) may not have children
    return (sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()
            and not multiprocessing.current_process().daemon)


_job = None  # (fn, chunks, buffers) inside a forked worker


def _init_worker(fn, chunks):
    global _job
    _job = (fn, chunks, {})  # fork: fn and chunks are inherited, never pickled


def _forked_chunk(i):
    fn, chunks, buffers = _job
    return fn(*chunks[i], buffers)


def _run_forked(fn, chunks, workers, bar):
    pool = multiprocessing.get_context("fork").Pool(workers, _init_worker, (fn, chunks))
    try:
        results = list(_ticking(pool.imap(_forked_chunk, range(len(chunks))), bar))
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
    return results


# --------------------------------------------------------------------------------------------- per-chunk kernels
def _low_bit(keys, cols=None):
    """bool (q, cols): the lowest bit of integer keys[:, :cols] (read from the low byte on little-endian machines)."""
    cols = keys.shape[1] if cols is None else cols
    if sys.byteorder == "little" and keys.flags.c_contiguous:
        return (keys.view(np.uint8)[:, :cols * keys.itemsize:keys.itemsize] & 1).view(np.bool_)
    return (keys[:, :cols] & 1).astype(np.bool_)


def _from_sorted_keys(keys, topk, grid):
    """Metrics of a chunk from its ranking, sorted ascending on unique keys whose lowest bit is the relevance.
    Also returns the running count of relevant items along the ranking (q, n)."""
    n = keys.shape[1]
    srel = _low_bit(keys)
    counts = np.cumsum(srel, axis=1, dtype=np.int32 if n < 2**31 else np.int64)
    terms = np.zeros(keys.shape, np.float64)        # P@k where rel_k, else 0 (as (cum/k)·rel_k)
    np.divide(counts, np.arange(1, n + 1, dtype=np.float64), out=terms, where=srel)
    del srel
    ap_sum, hits = terms[:, :topk].sum(axis=1), counts[:, topk - 1].astype(np.int64)  # AP@K from the same terms
    ap_all = terms.sum(axis=1)
    del terms
    gidx = np.asarray(grid, np.int64) - 1
    return {"ap_sum": ap_sum, "hits": hits, "ap_all_sum": ap_all, "n_rel": counts[:, -1].astype(np.int64),
            "grid_rel": counts[:, gidx].astype(np.int64)}, counts


def _hamming_chunk(qw, dw, qm, dm, bits, topk, grid, map_all, workers):
    """Hamming metrics of a chunk of queries from the ranking kernel (`hashbench.ranking`): the stable top K (the
    whole ranking with map_all), the relevant count at every grid point, the key histogram (PR by radius)."""
    out = hamming_rank(qw, dw, qm, dm, bits, depth=dw.shape[0] if map_all else topk, cuts=grid, topk=topk,
                       workers=workers)
    hist = out["hist"]
    le = np.cumsum(hist[:, 0::2] + hist[:, 1::2], axis=1)   # (q, bits+1) items with distance <= r
    rel_le = np.cumsum(hist[:, 1::2], axis=1)
    ap = out["ap"]
    return {"ap_sum": ap[:, 0], "hits": ap[:, 1].astype(np.int64), "ap_all_sum": ap[:, 2] if map_all else None,
            "n_rel": rel_le[:, -1], "grid_rel": out["grid_rel"], "le": le, "rel_le": rel_le}


def _aqd_keys(qf, cb, assign_t, qm, dm, r0, r1, buffers, neg_bias=None):
    """(q, n) int64 keys of one query chunk, unique and ascending in the stable ranking: high 32 bits the score as
    an order-preserving int32 of -score, low 32 bits index << 1 | relevance bit. Also the relevant count per query.
    The gather reads -T (negation is exact, so the gather-sum is exactly -score) with no -0.0 entries, so no sum is
    -0.0 either and equal scores have equal bits. `neg_bias` (n,) float32, when given, is added to every -score
    after the sum (search by L2 distance, ``aqd_topk``)."""
    n = assign_t.shape[1]
    q = r1 - r0
    tab = np.negative(_aqd_table(qf[r0:r1], cb).transpose(1, 2, 0), order="C")  # (M, K, q): a gather copies rows
    tab += np.float32(0.0)                                                         # -0.0 -> +0.0
    keys = _scratch(buffers, "keys", (q, n), np.int64)
    halves = keys.view(np.uint32)                                 # little-endian: [:, 0::2] low, [:, 1::2] high
    low, high = (halves[:, 0::2], halves[:, 1::2].view(np.int32)) if sys.byteorder == "little" else \
        (halves[:, 1::2], halves[:, 0::2].view(np.int32))
    n_rel = np.zeros(q, np.int64)
    idx = np.arange(n, dtype=np.uint32) << np.uint32(1)
    block = max(256, _BLOCK_PAIRS // max(1, q))
    for b0 in range(0, n, block):
        b1 = min(n, b0 + block)
        scores = np.take(tab[0], assign_t[0, b0:b1], axis=0)      # (w, q) float32, summed in order m = 0..M-1
        for m in range(1, tab.shape[0]):
            scores += np.take(tab[m], assign_t[m, b0:b1], axis=0)
        if neg_bias is not None:
            scores += neg_bias[b0:b1, None]
            scores += np.float32(0.0)                             # -0.0 -> +0.0, as above
        i = scores.view(np.int32)                                 # float order -> int32 order: flip negatives'
        flip = i >> 31                                            # magnitude bits
        flip &= 0x7FFFFFFF
        i ^= flip
        high[:, b0:b1] = i.T
        w = b1 - b0
        rel = _relevance(qm[r0:r1], dm[b0:b1], _scratch(buffers, "aq_rel", (q, block), np.bool_)[:, :w],
                         _scratch(buffers, "aq_and", (q, block), qm.dtype)[:, :w],
                         _scratch(buffers, "aq_spare", (q, block), np.bool_)[:, :w])
        n_rel += np.count_nonzero(rel, axis=1)
        np.bitwise_or(idx[None, b0:b1], rel, out=low[:, b0:b1])
    return keys, n_rel


def _aqd_chunk(qf, cb, assign_t, qm, dm, topk, grid, map_all, r0, r1, buffers):
    """AQD metrics of one query chunk. map_all: full sort of every ranking. Otherwise a partition cascade on the
    unique keys (largest grid point first, each step on the prefix the previous one left), after which the first N
    columns are exactly the top N for every grid point N beyond K and for K; only the top K are sorted."""
    keys, n_rel = _aqd_keys(qf, cb, assign_t, qm, dm, r0, r1, buffers)
    if map_all:
        keys.sort(axis=1)
        return _from_sorted_keys(keys, topk, grid)[0]
    n = keys.shape[1]
    far = sorted(g for g in grid if topk < g < n)
    width = n
    for p in far[::-1] + ([topk] if topk < n else []):
        keys[:, :width].partition(p - 1, axis=1)
        width = p
    top = np.sort(keys[:, :topk], axis=1)
    srel = _low_bit(top)
    ap_sum, hits, cum = _ap_rows(srel, buffers)
    grid_rel = np.empty((len(keys), len(grid)), np.int64)
    rel_far, prev = np.zeros(len(keys), np.int64), topk
    low = _low_bit(keys, far[-1]) if far else None
    for j, g in enumerate(grid):
        if g <= topk:
            grid_rel[:, j] = cum[:, g - 1]
        elif g < n:
            rel_far = rel_far + np.count_nonzero(low[:, prev:g], axis=1)
            grid_rel[:, j], prev = rel_far + cum[:, -1], g
        else:
            grid_rel[:, j] = n_rel
    return {"ap_sum": ap_sum, "hits": hits, "ap_all_sum": None, "n_rel": n_rel, "grid_rel": grid_rel}


# --------------------------------------------------------------------------------------------------------- results
def _summarise(parts, nq, n, topk, zero, grid):
    ap_sum = np.concatenate([p["ap_sum"] for p in parts])
    hits = np.concatenate([p["hits"] for p in parts])
    n_rel = np.concatenate([p["n_rel"] for p in parts])
    grid_rel = np.concatenate([p["grid_rel"] for p in parts])
    ap = [float(s) / int(h) if h > 0 else 0.0 for s, h in zip(ap_sum.tolist(), hits.tolist())]
    kept = [a for a, h in zip(ap, hits.tolist()) if h > 0 or zero == "count"]
    res = {"map": _fmean(kept), "topk": int(topk), "zero": zero, "n_query": int(nq), "n_database": int(n),
           "n_query_scored": len(kept)}
    if parts[0]["ap_all_sum"] is not None:
        s_all = np.concatenate([p["ap_all_sum"] for p in parts])
        res["map_all"] = _fmean(float(s) / int(r) if r > 0 else 0.0 for s, r in zip(s_all.tolist(), n_rel.tolist()))
    else:
        res["map_all"] = None
    prec = [_fmean((grid_rel[:, j] / g).tolist()) for j, g in enumerate(grid)]
    res["precision_at_n"] = {"n": [int(g) for g in grid], "precision": prec}
    has_rel = n_rel > 0
    recall = [_fmean((grid_rel[has_rel, j] / n_rel[has_rel]).tolist()) for j in range(len(grid))]
    res["_rank_pr"] = {"rank": [int(g) for g in grid], "precision": prec, "recall": recall}
    res["_n_rel"] = n_rel
    res["_ap"] = ap
    return res


def _radius_pr(parts, bits, n_rel):
    le = np.concatenate([p["le"] for p in parts])
    rel_le = np.concatenate([p["rel_le"] for p in parts])
    prec_q = np.where(le > 0, rel_le / np.maximum(le, 1), 0.0)
    has_rel = n_rel > 0
    rec_q = rel_le[has_rel] / n_rel[has_rel, None]
    precision = [_fmean(prec_q[:, r].tolist()) for r in range(bits + 1)]
    recall = [_fmean(rec_q[:, r].tolist()) for r in range(bits + 1)]
    return {"radius": list(range(bits + 1)), "precision": precision, "recall": recall}


def _finish(res, keep_per_query):
    rank_pr = res.pop("_rank_pr")
    res.pop("_n_rel")
    ap = res.pop("_ap")
    if keep_per_query:
        res["ap"] = ap
    return res, rank_pr


# ------------------------------------------------------------------------------------------------------ public API
def _common_args(query_labels, db_labels, nq, n, zero, topk, pn_points):
    """The checks both entry points share: labels, zero policy, K and the rank grid."""
    ql = _labels(query_labels, "query_labels", nq)
    dl = _labels(db_labels, "db_labels", n, ql.shape[1])
    _check_zero(zero)
    return ql, dl, _resolve_topk(topk, n), _rank_grid(pn_points, n)


def evaluate_hamming(query_codes, db_codes, query_labels, db_labels, *, topk=None, zero="count", radius=2,
                     pn_points=None, pr="radius", progress=False, map_all=True, workers=None,
                     per_query=False) -> dict:
    """Evaluate ±1 binary codes by Hamming ranking (stable ties). See the module docstring for the definitions.

    Returns a dict with map, topk, zero, n_query, n_database, n_query_scored, map_all, precision_at_n {n, precision},
    pr ({radius, precision, recall} for pr="radius", {rank, precision, recall} for pr="rank"), precision_radius,
    radius. ``map_all=False`` skips the whole-ranking mAP (then None) and ranks only the top K.
    ``per_query=True`` adds ``ap``: the AP@K of every query (0 for queries without hits).
    ``workers``: how many threads run the kernel (None: one per usable CPU). The result does not depend on it.
    """
    qbits = _sign_bits(query_codes, "query_codes")
    dbits = _sign_bits(db_codes, "db_codes")
    if qbits.shape[1] != dbits.shape[1]:
        _fail(f"query_codes have {qbits.shape[1]} bits but db_codes have {dbits.shape[1]}; both need the same bits")
    nq, bits = qbits.shape
    n = dbits.shape[0]
    if nq == 0 or n == 0 or bits == 0:
        _fail(f"empty input: {nq} queries, {n} database items, {bits} bits; all must be positive")
    ql, dl, k, grid = _common_args(query_labels, db_labels, nq, n, zero, topk, pn_points)
    if isinstance(radius, (bool, np.bool_)) or not isinstance(radius, (int, np.integer)) or radius < 0:
        _fail(f"radius={radius!r} is not allowed; use an int >= 0")
    if pr not in ("radius", "rank"):
        _fail(f"pr={pr!r} is not allowed; use 'radius' (PR over Hamming radius 0..bits) or 'rank' (PR by rank)")
    nworkers = _workers(workers)
    qw, dw, qm, dm = pack_words(qbits), pack_words(dbits), pack_words(ql), pack_words(dl)

    def fn(r0, r1, buffers):
        return _hamming_chunk(qw[r0:r1], dw, qm[r0:r1], dm, bits, k, grid, map_all, nworkers)
    chunks = [(s, min(nq, s + _HAMMING_ROWS)) for s in range(0, nq, _HAMMING_ROWS)]
    parts = _run_chunks(fn, chunks, 1, progress, "evaluate (hamming)", nq * n)  # the kernel runs its own threads
    res = _summarise(parts, nq, n, k, zero, grid)
    n_rel = res["_n_rel"]
    radius_pr = _radius_pr(parts, bits, n_rel)
    res, rank_pr = _finish(res, per_query)
    res["pr"] = radius_pr if pr == "radius" else rank_pr
    res["precision_radius"] = radius_pr["precision"][min(int(radius), bits)]
    res["radius"] = int(radius)
    return res


def _aqd_table(qf, cb, chunk=4):
    """T[q, m, k] = <q, C[m, k]> from float64 inputs: products summed over D per entry (numpy's sum over the last
    axis, so deterministic), stored as float32. Small chunks keep the (chunk, M, K, D) products in cache."""
    out = np.empty((qf.shape[0],) + cb.shape[:2], np.float32)
    for s in range(0, qf.shape[0], chunk):
        out[s:s + chunk] = (qf[s:s + chunk, None, None, :] * cb[None]).sum(axis=-1)
    return out


def _aqd_inputs(query_features, db_assign, codebooks):
    """Checked AQD inputs: float64 query features (nq, D) and codebooks (M, K, D), assignments transposed (M, n)."""
    qf = np.asarray(query_features)
    cb = np.asarray(codebooks)
    assign = np.asarray(db_assign)
    if qf.ndim != 2 or qf.dtype.kind not in "iuf":
        _fail(f"query_features has shape {qf.shape} and dtype {qf.dtype}; expected a real 2-D array (n, D)")
    if cb.ndim != 3 or cb.dtype.kind not in "iuf":
        _fail(f"codebooks has shape {cb.shape}; expected a real array (M, K, D)")
    if cb.shape[2] != qf.shape[1]:
        _fail(f"codebooks have dimension {cb.shape[2]} but query_features have {qf.shape[1]}; they must match")
    if assign.ndim != 2 or assign.dtype.kind not in "iu" or assign.shape[1] != cb.shape[0]:
        _fail(f"db_assign has shape {assign.shape} and dtype {assign.dtype}; expected integers (n, M={cb.shape[0]})")
    if assign.size and (assign.min() < 0 or assign.max() >= cb.shape[1]):
        _fail(f"db_assign has values in [{assign.min()}, {assign.max()}]; codeword indices must be in "
              f"[0, {cb.shape[1] - 1}]")
    if not (np.isfinite(qf).all() and np.isfinite(cb).all()):
        _fail("query_features or codebooks contain NaN or inf; expected finite values")
    nq, n = qf.shape[0], assign.shape[0]
    if nq == 0 or n == 0:
        _fail(f"empty input: {nq} queries, {n} database items; both must be positive")
    if n >= 2**31:
        _fail(f"db_assign has {n} items; at most 2**31 - 1 are supported")
    return qf.astype(np.float64), cb.astype(np.float64), np.ascontiguousarray(assign.T.astype(np.intp))


def evaluate_aqd(query_features, db_assign, codebooks, query_labels, db_labels, *, topk=None, zero="count",
                 pn_points=None, progress=False, map_all=True, workers=None, per_query=False) -> dict:
    """Evaluate quantized codes by the asymmetric inner-product score (descending, stable ties).

    query_features (nq, D) real; db_assign (n, M) integer codeword indices; codebooks (M, K, D).
    Returns a dict with map, topk, zero, n_query, n_database, n_query_scored, map_all,
    precision_at_n {n, precision} and pr {rank, precision, recall} (same rank grid as precision_at_n).
    ``map_all=False`` skips the whole-ranking mAP (then None) and sorts only the top K of each ranking (the grid
    points beyond K are counted after a partition), which is several times faster.
    ``per_query=True`` adds ``ap``: the AP@K of every query (0 for queries without hits).
    ``workers``: how many run in parallel (None: one per usable CPU). On Linux, jobs of 2**25 query x item pairs
    or more use forked worker processes, smaller ones threads. The result does not depend on it.
    """
    qf64, cb64, assign_t = _aqd_inputs(query_features, db_assign, codebooks)
    nq, n = qf64.shape[0], assign_t.shape[1]
    ql, dl, k, grid = _common_args(query_labels, db_labels, nq, n, zero, topk, pn_points)
    nworkers = _workers(workers)
    qm, dm = _words(ql), _words(dl)
    chunks = _chunks(nq, n, 40 if map_all else 12)
    parts = _run_chunks(lambda r0, r1, b: _aqd_chunk(qf64, cb64, assign_t, qm, dm, k, grid, map_all, r0, r1, b), chunks,
                        nworkers, progress, "evaluate (aqd)", nq * n)
    res = _summarise(parts, nq, n, k, zero, grid)
    res, rank_pr = _finish(res, per_query)
    res["pr"] = rank_pr
    return res


def aqd_topk(query_features, db_assign, codebooks, k, *, bias=None, workers=None):
    """The evaluator's AQD ranking cut at k: exact top k by the asymmetric score, descending, ties by ascending
    database position. Returns (positions (nq, k) int64, scores (nq, k) float32, exactly the evaluator's).
    `bias`: an optional per-item term (n,) added to every score (float32), e.g. -|x_i|^2 / 2 to rank by L2."""
    qf64, cb64, assign_t = _aqd_inputs(query_features, db_assign, codebooks)
    nq, n = qf64.shape[0], assign_t.shape[1]
    k = _resolve_topk(k, n)
    neg_bias = None
    if bias is not None:
        neg_bias = np.negative(np.asarray(bias, np.float32))
        if neg_bias.shape != (n,) or not np.isfinite(neg_bias).all():
            _fail(f"bias has shape {neg_bias.shape}; expected {n} finite values, one per database item")
    no_labels = np.zeros((nq, 1), np.uint8), np.zeros((n, 1), np.uint8)

    def fn(r0, r1, buffers):
        keys = _aqd_keys(qf64, cb64, assign_t, *no_labels, r0, r1, buffers, neg_bias)[0]
        if k < n:
            keys.partition(k - 1, axis=1)
        return np.sort(keys[:, :k], axis=1)
    top = np.concatenate(_run_chunks(fn, _chunks(nq, n, 12), _workers(workers), False, "search (aqd)", nq * n))
    positions = (top & 0xFFFFFFFF) >> 1
    flipped = (top >> 32).astype(np.int32)               # undo the order-preserving map of _aqd_keys (an involution)
    flipped ^= (flipped >> 31) & 0x7FFFFFFF
    return positions, np.negative(flipped.view(np.float32))


def mean_average_precision(query_codes, db_codes, query_labels, db_labels, *, topk=None, zero="count") -> float:
    """mAP@K of ±1 codes under Hamming ranking (stable ties); a shortcut for evaluate_hamming(...)["map"]."""
    return evaluate_hamming(query_codes, db_codes, query_labels, db_labels, topk=topk, zero=zero,
                            map_all=False, workers=1)["map"]
