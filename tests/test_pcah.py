import numpy as np
import pytest

from hashbench.errors import HashbenchError
from hashbench.methods import DatasetInfo, TrainSet, get_method

TWO_PIXELS = DatasetInfo("toy", (1, 2, 1), 2, frozenset({"image"}))


def images(points):
    """2-pixel images whose pixel values are 100 + 10 * point (so pixels / 255 are an affine copy)."""
    return (100 + 10 * np.asarray(points)).astype(np.uint8).reshape(-1, 1, 2, 1)


def test_bits_are_signs_of_the_leading_principal_components():
    # (+-3, +-1) and (+-1, +-2): mean 0, no covariance, variance 40 vs 20 -> PC1 = axis 1, PC2 = axis 2 (up to sign)
    pts = np.array([[s * a, t * b] for a, b in ((3, 1), (1, 2)) for s in (1, -1) for t in (1, -1)])
    method = get_method("pcah")(2, 0, None, TWO_PIXELS)
    method.fit(TrainSet(images(pts)))
    w = method.arrays["image_projection"]
    assert np.allclose(np.abs(w), np.eye(2), atol=1e-6)
    codes = method.encode(images(pts))
    signs = np.sign(np.diag(w))
    expected = np.where(pts * signs >= 0, 1, -1)  # centred: the points' mean is 0
    assert np.array_equal(codes, expected)


def test_deterministic_whatever_the_seed():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (50, 28, 28, 1), dtype=np.uint8)
    info = DatasetInfo("mnist5k", (28, 28, 1), 10, frozenset({"image"}))
    a, b = (get_method("pcah")(16, s, None, info) for s in (0, 7))
    a.fit(TrainSet(x)), b.fit(TrainSet(x))
    assert np.array_equal(a.encode(x), b.encode(x))


def test_more_bits_than_train_items_or_dimensions_is_refused():
    with pytest.raises(HashbenchError, match=r"^bits: 3 is not allowed for pcah .* use at most 2$"):
        get_method("pcah")(3, 0, None, TWO_PIXELS).fit(TrainSet(images([[1, 2], [3, 4], [5, 0]])))
