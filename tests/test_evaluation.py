"""The evaluator against a plain reference (per-query loop, full stable argsort, AP literally from the definition)
and against hand-computed examples."""
import json
import math

import numpy as np
import pytest

from hashbench import evaluation
from hashbench.errors import HashbenchError
from hashbench.evaluation import default_rank_grid, evaluate_aqd, evaluate_hamming, mean_average_precision


# --------------------------------------------------------------------------------------------------- the reference
def ref_ap(rel_sorted, k):
    """AP@k = (1/N_q) Σ_{i≤k} P@i·rel_i, N_q = hits in the top k; returns (AP or None when N_q = 0)."""
    rel = rel_sorted[:k]
    cum = np.cumsum(rel)
    prec = cum / np.arange(1, len(rel) + 1)
    hits = int(cum[-1])
    return (float(np.sum(prec * rel)) / hits) if hits else None


def ref_metrics(rankings, rels, topk, zero, grid):
    """rankings: per query the database order; rels: per query the relevance in database order."""
    n = len(rankings[0])
    k = n if topk in (None, "all") else min(topk, n)
    aps, aps_all, pn, recall_rank = [], [], [[] for _ in grid], [[] for _ in grid]
    for order, rel in zip(rankings, rels):
        srel = rel[order]
        ap = ref_ap(srel, k)
        if ap is not None or zero == "count":
            aps.append(ap or 0.0)
        aps_all.append(ref_ap(srel, n) or 0.0)
        for j, g in enumerate(grid):
            pn[j].append(int(srel[:g].sum()) / g)
            if rel.sum():
                recall_rank[j].append(int(srel[:g].sum()) / int(rel.sum()))
    mean = lambda v: math.fsum(v) / len(v) if v else 0.0  # noqa: E731
    return {"map": mean(aps), "n_query_scored": len(aps), "topk": k, "map_all": mean(aps_all),
            "pn": [mean(v) for v in pn], "recall_rank": [mean(v) for v in recall_rank]}


def ref_hamming(qc, dc, ql, dl, topk=None, zero="count", radius=2, grid=None):
    qb = np.where(np.asarray(qc) >= 0, 1, -1).astype(np.int64)
    db = np.where(np.asarray(dc) >= 0, 1, -1).astype(np.int64)
    bits, n = qb.shape[1], len(db)
    grid = grid or default_rank_grid(n)
    rankings, rels, dists = [], [], []
    for i in range(len(qb)):
        d = (bits - db @ qb[i]) // 2
        rankings.append(np.argsort(d, kind="stable"))
        rels.append((np.asarray(dl, np.int64) @ np.asarray(ql[i], np.int64)) > 0)
        dists.append(d)
    out = ref_metrics(rankings, rels, topk, zero, grid)
    prec_r, rec_r = [], []
    for r in range(bits + 1):
        p, rc = [], []
        for d, rel in zip(dists, rels):
            ret = d <= r
            p.append(int((ret & rel).sum()) / int(ret.sum()) if ret.sum() else 0.0)
            if rel.sum():
                rc.append(int((ret & rel).sum()) / int(rel.sum()))
        prec_r.append(math.fsum(p) / len(p))
        rec_r.append(math.fsum(rc) / len(rc) if rc else 0.0)
    out["pr_precision"], out["pr_recall"] = prec_r, rec_r
    out["precision_radius"] = prec_r[min(radius, bits)]
    return out


def ref_aqd(qf, assign, cb, ql, dl, topk=None, zero="count", grid=None):
    n = len(assign)
    grid = grid or default_rank_grid(n)
    rankings, rels = [], []
    for i in range(len(qf)):
        table = (np.asarray(qf[i], np.float64)[None, None, :] * np.asarray(cb, np.float64)).sum(-1).astype(np.float32)
        s = table[0, assign[:, 0]]
        for m in range(1, cb.shape[0]):
            s = s + table[m, assign[:, m]]
        rankings.append(np.argsort(-s, kind="stable"))
        rels.append((np.asarray(dl, np.int64) @ np.asarray(ql[i], np.int64)) > 0)
    return ref_metrics(rankings, rels, topk, zero, grid)


def check_same(res, ref, hamming=True):
    assert res["map"] == ref["map"]
    assert res["n_query_scored"] == ref["n_query_scored"]
    assert res["topk"] == ref["topk"]
    if res["map_all"] is not None:
        assert res["map_all"] == ref["map_all"]
    assert res["precision_at_n"]["precision"] == ref["pn"]
    if hamming and "radius" in res["pr"]:
        assert res["pr"]["precision"] == ref["pr_precision"]
        assert res["pr"]["recall"] == ref["pr_recall"]
        assert res["precision_radius"] == ref["precision_radius"]
    else:  # PR by rank: its precision is P@N on the same grid (checked above)
        assert res["pr"]["rank"] == res["precision_at_n"]["n"]
        assert res["pr"]["recall"] == ref["recall_rank"]


def random_case(rng, nq, n, bits, classes, density=0.25, zero_rows=0.1, single=False):
    qc = rng.choice([-1, 1], size=(nq, bits)).astype(np.int8)
    dc = rng.choice([-1, 1], size=(n, bits)).astype(np.int8)
    if single:
        ql = np.eye(classes, dtype=np.uint8)[rng.integers(0, classes, nq)]
        dl = np.eye(classes, dtype=np.uint8)[rng.integers(0, classes, n)]
    else:
        ql = (rng.random((nq, classes)) < density).astype(np.uint8)
        dl = (rng.random((n, classes)) < density).astype(np.uint8)
        dl[rng.random(n) < zero_rows] = 0
        ql[rng.random(nq) < zero_rows] = 0
    return qc, dc, ql, dl


# ---------------------------------------------------------------------------------------------- hand-computed cases
def tiny():
    q = np.array([[1, 1, 1, 1], [-1, -1, -1, -1]], np.int8)
    db = np.array([[-1, -1, 1, 1],   # d 2 / 2
                   [1, 1, 1, 1],     # d 0 / 4
                   [1, -1, -1, 1],   # d 2 / 2
                   [1, 1, 1, -1]],   # d 1 / 3
                  np.int8)
    ql = np.array([[1, 0], [0, 1]], np.uint8)
    dl = np.array([[1, 1], [0, 1], [1, 0], [1, 0]], np.uint8)
    return q, db, ql, dl


@pytest.mark.parametrize("map_all", [True, False])
def test_hand_computed(map_all):
    q, db, ql, dl = tiny()
    # query 0: ranking x1 (d0) x3 (d1) x0 (d2) x2 (d2, after x0 by index) -> relevance 0 1 1 1
    # query 1: ranking x0 (d2) x2 (d2) x3 (d3) x1 (d4) -> relevance 1 0 0 1
    res = evaluate_hamming(q[:1], db, ql[:1], dl, map_all=map_all, pn_points=[1, 2, 4])
    ap_all = (1 / 2 + 2 / 3 + 3 / 4) / 3
    assert res["map"] == pytest.approx(ap_all, abs=1e-15)
    if map_all:
        assert res["map_all"] == pytest.approx(ap_all, abs=1e-15)
    else:
        assert res["map_all"] is None
    assert res["precision_at_n"] == {"n": [1, 2, 4], "precision": [0.0, 0.5, 0.75]}
    assert res["precision_radius"] == 0.75 and res["radius"] == 2
    assert res["pr"]["radius"] == [0, 1, 2, 3, 4]
    assert res["pr"]["precision"] == [0.0, 0.5, 0.75, 0.75, 0.75]
    assert res["pr"]["recall"] == pytest.approx([0.0, 1 / 3, 1.0, 1.0, 1.0], abs=1e-15)
    assert evaluate_hamming(q[:1], db, ql[:1], dl, topk=2, map_all=map_all)["map"] == 0.5
    one = evaluate_hamming(q[:1], db, ql[:1], dl, topk=1, map_all=map_all)
    assert one["map"] == 0.0 and one["n_query_scored"] == 1
    skip = evaluate_hamming(q[:1], db, ql[:1], dl, topk=1, zero="skip", map_all=map_all)
    assert skip["map"] == 0.0 and skip["n_query_scored"] == 0

    both = evaluate_hamming(q, db, ql, dl, topk=2, radius=0, map_all=map_all, pn_points=[2])
    # query 1 top-2: x0 (rel), x2 (not) -> AP 1; query 0 top-2 -> AP 1/2
    assert both["map"] == 0.75
    # radius 0: query 0 retrieves x1 (not relevant) -> 0; query 1 retrieves nothing -> 0
    assert both["precision_radius"] == 0.0
    assert both["precision_at_n"]["precision"] == [0.5]
    json.dumps(both)


def test_hand_computed_aqd():
    # 2 codebooks of 3 codewords in 2-D; x̂ = C[0, b0] + C[1, b1]
    cb = np.array([[[1, 0], [0, 1], [0, 0]], [[1, 0], [0, 0], [-1, 0]]], np.float32)
    assign = np.array([[0, 1], [1, 0], [0, 0], [2, 2], [1, 0]], np.uint8)
    # x̂: (1,0) (1,1) (2,0) (-1,0) (1,1); query (1, 0) -> scores 1, 1, 2, -1, 1 -> ranking x2, x0, x1, x4, x3
    q = np.array([[1.0, 0.0]])
    ql = np.array([[1]], np.uint8)
    dl = np.array([[1], [0], [0], [1], [1]], np.uint8)   # relevance by ranking: 0 1 0 1 1
    res = evaluate_aqd(q, assign, cb, ql, dl, pn_points=[1, 2, 5])
    assert res["map"] == pytest.approx((1 / 2 + 2 / 4 + 3 / 5) / 3, abs=1e-15)
    assert res["precision_at_n"]["precision"] == [0.0, 0.5, 0.6]
    assert res["pr"] == {"rank": [1, 2, 5], "precision": [0.0, 0.5, 0.6], "recall": [0.0, 1 / 3, 1.0]}
    assert evaluate_aqd(q, assign, cb, ql, dl, topk=3)["map"] == 0.5
    json.dumps(res)


# ------------------------------------------------------------------------------------------- against the reference
@pytest.mark.parametrize("map_all", [True, False])
@pytest.mark.parametrize("bits,single", [(4, False), (6, True), (8, False), (13, False), (70, False), (130, False)])
def test_matches_reference_random(bits, single, map_all):
    rng = np.random.default_rng(bits)
    qc, dc, ql, dl = random_case(rng, 23, 700, bits, 5, single=single)
    for topk in (1, 7, 50, None, "all", 10_000):
        for zero in ("count", "skip"):
            res = evaluate_hamming(qc, dc, ql, dl, topk=topk, zero=zero, map_all=map_all)
            check_same(res, ref_hamming(qc, dc, ql, dl, topk=topk, zero=zero))
    res = evaluate_hamming(qc, dc, ql, dl, topk=20, pr="rank", map_all=map_all)
    check_same(res, ref_hamming(qc, dc, ql, dl, topk=20))


@pytest.mark.parametrize("map_all", [True, False])
def test_matches_reference_many_tiles_and_chunks(monkeypatch, map_all):
    """Large enough for several histogram tiles and blocks; tiny working memory forces many query chunks."""
    rng = np.random.default_rng(7)
    qc, dc, ql, dl = random_case(rng, 9, 40_000, 6, 4, density=0.3)
    ref = ref_hamming(qc, dc, ql, dl, topk=5000, zero="skip")
    monkeypatch.setattr(evaluation, "_HAMMING_ROWS", 2)
    for workers in (1, 2):   # one kernel thread, two
        res = evaluate_hamming(qc, dc, ql, dl, topk=5000, zero="skip", map_all=map_all, workers=workers)
        check_same(res, ref)
    grid = [3, 999, 1024, 1025, 17_000, 39_999, 50_000]
    res = evaluate_hamming(qc, dc, ql, dl, topk=1500, map_all=map_all, pn_points=grid)
    check_same(res, ref_hamming(qc, dc, ql, dl, topk=1500, grid=sorted({min(g, 40_000) for g in grid})))


@pytest.mark.parametrize("map_all", [True, False])
def test_more_than_64_classes(map_all):
    """80 classes: the label masks take two 64-bit words (COCO, NUS-WIDE-81), in both the Hamming and AQD paths."""
    rng = np.random.default_rng(8)
    qc, dc, ql, dl = random_case(rng, 15, 900, 10, 80, density=0.02)
    ql[:, 70:] = dl[:, 70:] = 0
    ql[:5, 75] = dl[::7, 75] = 1                    # some relevance only through the second word
    for topk in (20, None):
        check_same(evaluate_hamming(qc, dc, ql, dl, topk=topk, map_all=map_all), ref_hamming(qc, dc, ql, dl, topk))
    qf, assign, cb, _, _ = aqd_case(rng, 15, 900, 2, 4, 5, 3, True)
    check_same(evaluate_aqd(qf, assign, cb, ql, dl, topk=50, map_all=map_all),
               ref_aqd(qf, assign, cb, ql, dl, topk=50), hamming=False)


def test_zero_relevant_queries_and_unlabelled_items():
    rng = np.random.default_rng(3)
    qc, dc, ql, dl = random_case(rng, 12, 300, 8, 3)
    ql[:4] = 0                     # these queries have no relevant item anywhere
    ql[4] = [0, 0, 1]
    dl[:, 2] = 0                   # ... and this one neither
    dl[::3] = 0                    # unlabelled items are never relevant
    for map_all in (True, False):
        for zero in ("count", "skip"):
            res = evaluate_hamming(qc, dc, ql, dl, topk=30, zero=zero, map_all=map_all)
            ref = ref_hamming(qc, dc, ql, dl, topk=30, zero=zero)
            check_same(res, ref)


def test_zero_code_maps_to_plus_one_and_dtypes_agree():
    rng = np.random.default_rng(4)
    qc, dc, ql, dl = random_case(rng, 10, 200, 12, 4)
    a = evaluate_hamming(qc, dc, ql, dl, topk=25)
    b = evaluate_hamming(qc.astype(np.float32) * 0.5, dc.astype(np.float64) * 3, ql, dl.astype(bool), topk=25)
    assert a == b
    dz = dc.copy()
    dz[dz == 1] = 0
    assert evaluate_hamming(qc, dz, ql, dl, topk=25) == a
    assert mean_average_precision(qc, dc, ql, dl, topk=25) == a["map"]


def test_per_query_ap_and_workers_deterministic(monkeypatch):
    rng = np.random.default_rng(5)
    qc, dc, ql, dl = random_case(rng, 40, 500, 5, 4)
    a = evaluate_hamming(qc, dc, ql, dl, topk=40, per_query=True, workers=1)
    monkeypatch.setattr(evaluation, "_HAMMING_ROWS", 7)        # several kernel calls
    b = evaluate_hamming(qc, dc, ql, dl, topk=40, per_query=True, workers=2, progress=True)
    assert a == b and len(a["ap"]) == 40


def aqd_case(rng, nq, n, m, k, d, classes, integer):
    if integer:
        cb = rng.integers(-3, 4, size=(m, k, d)).astype(np.float32)
        qf = rng.integers(-2, 3, size=(nq, d)).astype(np.float32)
    else:
        cb = rng.standard_normal((m, k, d)).astype(np.float32)
        qf = rng.standard_normal((nq, d)).astype(np.float32)
    assign = rng.integers(0, k, size=(n, m)).astype(np.uint8 if k <= 256 else np.uint16)
    assign[n // 2:] = assign[: n - n // 2]          # duplicated assignments: exact score ties
    ql = (rng.random((nq, classes)) < 0.3).astype(np.uint8)
    dl = (rng.random((n, classes)) < 0.3).astype(np.uint8)
    ql[0] = 0
    return qf, assign, cb, ql, dl


@pytest.mark.parametrize("map_all", [True, False])
@pytest.mark.parametrize("integer", [True, False])
def test_aqd_matches_reference(integer, map_all, monkeypatch):
    rng = np.random.default_rng(11 + integer)
    qf, assign, cb, ql, dl = aqd_case(rng, 17, 600, 3, 4 if integer else 16, 6, 4, integer)
    monkeypatch.setattr(evaluation, "_WORK_BYTES", 20_000)   # several query chunks
    monkeypatch.setattr(evaluation, "_FORK_MIN_PAIRS", 0 if integer else 2**62)  # forked processes, or threads
    for topk in (1, 7, 10, 50, 333, None, "all", 5000):
        for zero in ("count", "skip"):
            res = evaluate_aqd(qf, assign, cb, ql, dl, topk=topk, zero=zero, workers=2, map_all=map_all)
            assert (res["map_all"] is None) == (not map_all)
            check_same(res, ref_aqd(qf, assign, cb, ql, dl, topk=topk, zero=zero), hamming=False)


@pytest.mark.parametrize("map_all", [True, False])
def test_aqd_tie_heavy_grid_beyond_k(map_all):
    """Few distinct scores (2 codebooks of 2 integer codewords): huge tie groups straddle K and every grid point."""
    rng = np.random.default_rng(21)
    qf, assign, cb, ql, dl = aqd_case(rng, 11, 3000, 2, 2, 3, 3, True)
    ql[1] = 0
    ql[2] = [0, 0, 1]
    dl[:, 2] = 0                     # query 2 has no relevant item either
    dl[::5] = 0                      # unlabelled items
    grid = [1, 2, 3, 7, 50, 51, 999, 1000, 1001, 2999, 3000, 4000]
    g = sorted({min(x, 3000) for x in grid})
    for topk in (1, 7, 50, 1000, None, 10_000):
        res = evaluate_aqd(qf, assign, cb, ql, dl, topk=topk, pn_points=grid, map_all=map_all, per_query=True)
        check_same(res, ref_aqd(qf, assign, cb, ql, dl, topk=topk, grid=g), hamming=False)


def test_aqd_block_sparse_product_quantizer():
    """A PQ placed block-diagonally into (M, K, D) scores like the PQ: score = Σ_m <q_m, c_m,b_m>."""
    rng = np.random.default_rng(2)
    m, k, sub = 4, 8, 3
    pq = rng.integers(-2, 3, size=(m, k, sub)).astype(np.float32)
    cb = np.zeros((m, k, m * sub), np.float32)
    for i in range(m):
        cb[i, :, i * sub:(i + 1) * sub] = pq[i]
    qf = rng.integers(-2, 3, size=(5, m * sub)).astype(np.float32)
    assign = rng.integers(0, k, size=(300, m)).astype(np.uint16)
    ql = (rng.random((5, 3)) < 0.5).astype(np.uint8)
    dl = (rng.random((300, 3)) < 0.5).astype(np.uint8)
    res = evaluate_aqd(qf, assign, cb, ql, dl, topk=50, per_query=True)
    check_same(res, ref_aqd(qf, assign, cb, ql, dl, topk=50), hamming=False)


# ------------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs,needle", [
    ({"zero": "foo"}, "zero="), ({"topk": -3}, "topk="), ({"topk": 0}, "topk="), ({"topk": "most"}, "topk="),
    ({"radius": -1}, "radius="), ({"pr": "roc"}, "pr="), ({"pn_points": [0, 5]}, "pn_points="),
    ({"pn_points": []}, "pn_points="), ({"workers": 0}, "workers="),
])
def test_bad_options(kwargs, needle):
    q, db, ql, dl = tiny()
    with pytest.raises(HashbenchError, match=needle) as e:
        evaluate_hamming(q, db, ql, dl, **kwargs)
    assert "\n" not in str(e.value)


def test_bad_shapes():
    q, db, ql, dl = tiny()
    cases = [
        ((q[:, :3], db, ql, dl), "bits"),
        ((q, db, ql[:1], dl), "query_labels"),
        ((q, db, ql, dl[:, :1]), "db_labels"),
        ((q, db, ql, dl[:3]), "db_labels"),
        ((q[0], db, ql, dl), "query_codes"),
        ((q, db, ql[:, 0], dl), "query_labels"),
    ]
    for args, needle in cases:
        with pytest.raises(HashbenchError, match=needle) as e:
            evaluate_hamming(*args)
        assert "\n" not in str(e.value)
    qf = np.zeros((2, 4), np.float32)
    cb = np.zeros((2, 3, 4), np.float32)
    assign = np.zeros((4, 2), np.uint8)
    with pytest.raises(HashbenchError, match="codebooks"):
        evaluate_aqd(qf[:, :3], assign, cb, ql, dl)
    with pytest.raises(HashbenchError, match="db_assign"):
        evaluate_aqd(qf, assign[:, :1], cb, ql, dl)
    with pytest.raises(HashbenchError, match="db_assign"):
        evaluate_aqd(qf, assign + 3, cb, ql, dl)
    with pytest.raises(HashbenchError, match="zero="):
        evaluate_aqd(qf, assign, cb, ql, dl, zero="never")
    with pytest.raises(HashbenchError, match="db_labels"):
        evaluate_aqd(qf, assign, cb, ql, dl[:, :1])


def test_default_grid():
    assert default_rank_grid(1) == [1]
    assert default_rank_grid(7) == [1, 2, 5, 7]
    g = default_rank_grid(193_734)
    assert g[:6] == [1, 2, 5, 10, 20, 50] and g[-1] == 193_734 and len(g) == 17
