import math

import faiss
import numpy as np

from hashbench.methods import DatasetInfo, TrainSet, get_method

MNIST = DatasetInfo("mnist5k", (28, 28, 1), 10, frozenset({"image"}))


def test_square_is_rotated_onto_the_hypercube_vertices():
    # 4 points (+-1, 0), (0, +-1) around (128, 128): isotropic, so PCA's axes are arbitrary; the best rotation puts
    # every point at (+-r, +-r) / sqrt 2 (r its norm): quantization loss 2 (1 - r / sqrt 2)^2, 4 distinct codes
    pts = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]])
    x = (128 + 50 * pts).astype(np.uint8).reshape(4, 1, 2, 1)
    for seed in range(3):
        method = get_method("itq")(2, seed, None, DatasetInfo("toy", (1, 2, 1), 2, frozenset({"image"})))
        history = method.fit(TrainSet(x))
        norm = 50 / 255  # pixels are divided by 255
        assert math.isclose(history[0]["loss"], 2 * (1 - norm / math.sqrt(2)) ** 2, rel_tol=1e-5)
        codes = method.encode(x)
        assert len({tuple(c) for c in codes}) == 4


def test_projection_is_pca_then_faiss_itq_rotation():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (200, 28, 28, 1), dtype=np.uint8)
    method = get_method("itq")(8, 5, None, MNIST)
    method.fit(TrainSet(x))
    from hashbench.methods.shallow import pca

    feats = x.reshape(200, -1).astype(np.float32) / 255
    mean, comps = pca(feats, 8, "itq")
    v = np.ascontiguousarray((feats - mean) @ comps, dtype=np.float32)
    itq = faiss.ITQMatrix(8)
    itq.seed = 5
    itq.train(v)
    expected = np.where(itq.apply(v) >= 0, 1, -1)
    assert np.array_equal(method.encode(x), expected)
    again = get_method("itq")(8, 5, None, MNIST)
    again.load_state_dict(method.state_dict())
    assert np.array_equal(again.encode(x), expected)
