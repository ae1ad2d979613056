import math

import numpy as np
import pytest
import torch
from helpers import check_deep_method

from hashbench.losses.csq import CSQLoss, hash_centers, item_centers
from hashbench.methods import DatasetInfo, get_method


def test_hadamard_centers_when_they_fit():
    c = hash_centers(3, 4)
    assert c.tolist() == [[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1]]
    c = hash_centers(16, 8)  # [H; -H]: 2 x 8 rows
    assert torch.equal(c[8:], -c[:8])


def test_random_centers_when_hadamard_does_not_fit():
    c = hash_centers(10, 12, seed=3).numpy()  # 12 is not a power of two
    assert c.shape == (10, 12) and set(np.unique(c)) == {-1.0, 1.0}
    assert (c.sum(1) == 0).all()  # exactly half the bits -1
    assert np.array_equal(c, hash_centers(10, 12, seed=3).numpy())


def test_multi_label_center_is_the_sign_of_the_mean_with_ties_from_the_fixed_vector():
    centers = hash_centers(3, 4)
    tie = torch.tensor([-1.0, -1.0, 1.0, -1.0])
    labels = torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1], [0, 0, 0]])
    # {0, 1}: mean (1, 0, 1, 0) -> (1, tie, 1, tie); {0, 1, 2}: mean (1, 1/3, 1/3, -1/3)
    assert item_centers(labels, centers, tie).tolist() == [
        [1, 1, 1, 1], [1, -1, 1, -1], [1, 1, 1, -1], [-1, -1, 1, -1]]


def test_hand_computed_loss():
    # h = 0: BCE(0.5, target in {0, 1}) = log 2 per entry; (|0| - 1)^2 = 1
    h = torch.zeros(2, 4)
    t = hash_centers(2, 4)
    assert math.isclose(CSQLoss(0.05)(h, t).item(), math.log(2) + 0.05, rel_tol=1e-6)
    h = torch.tensor([[0.5, -0.5, 0.5, -0.5]])  # target (1, -1, 1, -1): BCE(0.75 -> 1) = -log 0.75 everywhere
    expected = -math.log(0.75) + 0.1 * 0.25
    assert math.isclose(CSQLoss(0.1)(h, t[1:]).item(), expected, rel_tol=1e-6)


@pytest.mark.slow
def test_method_fits_is_seeded_and_round_trips():
    method = check_deep_method("csq", {"epochs": 4, "batch_size": 16})
    assert torch.equal(method.targets.centers, hash_centers(4, 16))  # Hadamard rows: 16 bits, 4 classes


def test_targets_are_the_items_centers():
    info = DatasetInfo("mnist5k", (28, 28, 1), 4, frozenset({"image"}))
    method = get_method("csq")(8, 0, None, info)
    labels = torch.eye(4)[[2, 0]]
    assert torch.equal(method.targets(labels), hash_centers(4, 8)[[2, 0]])
