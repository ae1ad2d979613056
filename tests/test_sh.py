import numpy as np

from hashbench.methods import DatasetInfo, TrainSet, get_method
from hashbench.methods.sh import spectral_modes


def test_modes_with_the_smallest_eigenvalues_ties_in_table_order():
    # ranges (2, 1), 3 bits: direction 0 offers k = 1..3 ((k/2)^2 = 0.25, 1, 2.25), direction 1 offers k = 1 (1.0);
    # the tie at 1.0 goes to direction 0 (listed first)
    dims, ks = spectral_modes(np.array([2.0, 1.0]), 3)
    assert dims.tolist() == [0, 0, 1] and ks.tolist() == [1, 2, 1]


def test_bits_are_signs_of_the_chosen_eigenfunctions():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60, 4, 4, 1), dtype=np.uint8)
    method = get_method("sh")(6, 0, None, DatasetInfo("toy", (4, 4, 1), 2, frozenset({"image"})))
    method.fit(TrainSet(x))
    a = method.arrays
    y = (x.reshape(60, -1) / 255 - a["mean"]) @ a["components"]
    assert np.allclose(y.min(0), a["low"], atol=1e-5) and np.allclose(y.max(0) - y.min(0), a["width"], atol=1e-5)
    d, k = a["dims"], a["modes"]
    expected = np.where(np.cos(np.pi * k * (y[:, d] - a["low"][d]) / a["width"][d]) >= 0, 1, -1)
    assert np.array_equal(method.encode(x), expected)
    # the first bit cuts the first principal direction in the middle of its train range
    assert d[0] == 0 and k[0] == 1
    mid = a["low"][0] + a["width"][0] / 2
    assert np.array_equal(method.encode(x)[:, 0] == 1, y[:, 0] <= mid)
