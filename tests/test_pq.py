"""PQ and OPQ against FAISS's own indexes on a small case: the same codebooks and codes, and the evaluator's
inner-product score ranks the database as FAISS's squared-L2 asymmetric search does."""
import faiss
import numpy as np
import pytest

from hashbench.errors import HashbenchError
from hashbench.evaluation import evaluate_aqd
from hashbench.methods import DatasetInfo, TrainSet, get_method

INFO = DatasetInfo("toy", (3, 3, 1), 3, frozenset({"image"}))  # 9 pixels: padded to 10 for 2 books


def data(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 3, 3, 1), dtype=np.uint8)


def features(x, dim=10):
    f = x.reshape(len(x), -1).astype(np.float32) / 255
    return np.ascontiguousarray(np.pad(f, ((0, 0), (0, dim - f.shape[1]))))


def faiss_pq(seed):
    index = faiss.IndexPQ(10, 2, 8)
    index.pq.cp.seed = seed
    index.pq.cp.min_points_per_centroid = 1
    return index


def faiss_opq(seed, iterations):
    opq = faiss.OPQMatrix(10, 2)
    opq.niter = iterations
    inner = faiss.ProductQuantizer(10, 2, 8)
    inner.cp.seed, inner.cp.min_points_per_centroid = seed, 1
    opq.pq = inner
    start, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((10, 10)))
    faiss.copy_array_to_vector(start.astype(np.float32).ravel(), opq.A)
    index = faiss.IndexPreTransform(opq, faiss_pq(seed))
    return index, inner


def ranked_map(dist, ql, dl):
    """mAP@all from FAISS's distances, ties by database index (the evaluator's rule)."""
    aps = []
    for q in range(len(dist)):
        order = np.lexsort((np.arange(dist.shape[1]), dist[q]))
        rel = (ql[q] @ dl[order].T) > 0
        hits = np.cumsum(rel)
        aps.append((hits / np.arange(1, len(rel) + 1))[rel].sum() / max(hits[-1], 1))
    return float(np.mean(aps))


@pytest.mark.parametrize("name", ["pq", "opq"])
def test_codes_and_ranking_match_faiss(name):
    train, db, queries = data(300, 0), data(120, 1), data(15, 2)
    params = {"iterations": 3} if name == "opq" else None
    method = get_method(name)(16, 4, params, INFO)
    method.fit(TrainSet(train))
    if name == "pq":
        index, keep = faiss_pq(4), None
    else:
        index, keep = faiss_opq(4, 3)
    index.train(features(train))
    index.add(features(db))
    codes = method.encode(db)
    assert codes.dtype == np.uint8 and codes.shape == (120, 2)
    assert np.array_equal(codes, faiss.vector_to_array(faiss.downcast_index(
        index if name == "pq" else index.index).codes).reshape(120, 2))
    dist, ids = index.search(features(queries), 120)
    full = np.empty_like(dist)
    np.put_along_axis(full, ids, dist, axis=1)  # FAISS's distance of every (query, item)
    q = method.encode(queries, role="query")
    books = method.codebooks()
    score = np.einsum("qd,nd->qn", q.astype(np.float64), sum(books[m][codes[:, m]] for m in range(2)))
    x = q[:, :-1].astype(np.float64)
    assert np.allclose((x * x).sum(1, keepdims=True) - 2 * score, full, atol=1e-4)  # ||q||^2 - 2 score = ADC
    rng = np.random.default_rng(3)
    ql, dl = np.eye(3)[rng.integers(0, 3, 15)], np.eye(3)[rng.integers(0, 3, 120)]
    assert evaluate_aqd(q, codes, books, ql, dl, workers=1)["map"] == pytest.approx(ranked_map(full, ql, dl), abs=1e-12)


def test_opq_rotation_is_orthogonal_and_state_round_trips():
    train = data(300, 0)
    method = get_method("opq")(16, 1, {"iterations": 2}, INFO)
    method.fit(TrainSet(train))
    r = method.arrays["rotation"]
    assert np.allclose(r @ r.T, np.eye(10), atol=1e-5)
    again = get_method("opq")(16, 9, {"iterations": 2}, INFO)
    again.load_state_dict(method.state_dict())
    assert np.array_equal(again.encode(train), method.encode(train))
    assert np.array_equal(again.encode(train, role="query"), method.encode(train, role="query"))


def test_refusals():
    with pytest.raises(HashbenchError, match=r"^bits: 12 is not allowed for pq with pq.codewords = 256; use a multiple"):
        get_method("pq")(12, 0, None, INFO)
    with pytest.raises(HashbenchError, match=r"^pq: the train split has 10 items; it needs at least 256"):
        get_method("pq")(16, 0, None, INFO).fit(TrainSet(data(10, 0)))
    with pytest.raises(HashbenchError, match=r"^pq\.codewords: 100 is not allowed"):
        get_method("pq")(16, 0, {"codewords": 100}, INFO)
