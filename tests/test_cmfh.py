import numpy as np

from hashbench.methods import DatasetInfo, TrainSet, get_method
from hashbench.methods.cmfh import cmfh_objective, factorize

PAIRS = DatasetInfo("toy", (2, 3, 1), 3, frozenset({"image", "text"}), text_dim=4)


def test_every_block_update_is_exact_so_the_objective_never_rises():
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((30, 5)), rng.standard_normal((30, 3))]
    xs = [x - x.mean(0) for x in xs]
    alphas, mu, gamma = (0.3, 0.7), 2.0, 0.1
    y, us, ws, objective = factorize(xs, 2, alphas, mu, gamma, 12, np.random.default_rng(1))
    assert all(b <= a + 1e-9 for a, b in zip(objective, objective[1:]))
    assert objective[-1] == cmfh_objective(xs, y, us, ws, alphas, mu, gamma)
    # W_t was updated last: dF/dW_t = 2 alpha_t (-mu X_t^T (Y - X_t W_t) + gamma W_t) = 0
    for a, x, w in zip(alphas, xs, ws):
        assert np.allclose(2 * a * (-mu * x.T @ (y - x @ w) + gamma * w), 0, atol=1e-8)


def test_hand_computed_first_update_of_u():
    # one view x = (1, -1)^T, one bit; start y = (u0, u1) from the rng: U = (y^T y + gamma)^-1 y^T x
    x = np.array([[1.0], [-1.0]])
    rng = np.random.default_rng(5)
    y0 = np.random.default_rng(5).random((2, 1))
    _, us, _, _ = factorize([x, x], 1, (0.5, 0.5), 1.0, 0.5, 1, rng)
    expected = (y0[0, 0] - y0[1, 0]) / (y0[0, 0] ** 2 + y0[1, 0] ** 2 + 0.5)
    assert np.isclose(us[0][0, 0], expected) and np.isclose(us[1][0, 0], expected)


def test_seeded_and_identical_views_get_identical_codes(image_text_pairs):
    images, _ = image_text_pairs(seed=2)
    text = images.reshape(len(images), -1).astype(np.float32) / 255.0
    info = DatasetInfo("toy", (2, 3, 1), 3, frozenset({"image", "text"}), text_dim=6)
    codes = []
    for _ in range(2):
        method = get_method("cmfh")(4, 3, None, info)
        history = method.fit(TrainSet(images, texts=text))
        codes.append(method.encode(images, "image"))
        assert np.array_equal(codes[-1], method.encode(text, "text"))  # alpha 0.5: W_1 = W_2
    assert np.array_equal(codes[0], codes[1]) and len(history) == 25


def test_trains_on_pairs(image_text_pairs):
    images, texts = image_text_pairs()
    method = get_method("cmfh")(3, 0, {"iterations": 5}, PAIRS)
    history = method.fit(TrainSet(images, texts=texts))
    assert [h["epoch"] for h in history] == list(range(5))
    assert method.encode(texts, "text", "query").shape == (80, 3)
