import math

import pytest
import torch
from helpers import check_deep_method

from hashbench.losses.dsh import DSHLoss
from hashbench.methods import DatasetInfo, get_method


def test_hand_computed_pairs_and_regulariser():
    # b0 = (0, 0), b1 = (1, 0) class a; b2 = (0, 2) class b. D01 = 1 (similar), D02 = 4, D12 = 5 (dissimilar).
    b = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    y = torch.tensor([[1, 0], [1, 0], [0, 1]])
    reg = 2 + 1 + 2  # sum | |b| - 1 |
    assert math.isclose(DSHLoss(margin=2.0, alpha=0.1)(b, y).item(), 1 / 12 + 0.1 * reg / 3, rel_tol=1e-6)
    # margin 6: the dissimilar pairs add max(6 - 4, 0) + max(6 - 5, 0) = 3
    assert math.isclose(DSHLoss(margin=6.0, alpha=0.0)(b, y).item(), (1 + 3) / 12, rel_tol=1e-6)


def test_gradient_of_a_similar_pair_halves_as_in_the_official_layer():
    b = torch.tensor([[0.0], [1.0]], requires_grad=True)
    DSHLoss(margin=2.0, alpha=0.0)(b, torch.tensor([[1], [1]])).backward()
    # official gradient on b0: alpha (b0 - b1) with alpha = 1 / (N (N - 1)) = 1/2
    assert torch.allclose(b.grad, torch.tensor([[-0.5], [0.5]]))


@pytest.mark.slow
def test_method_fits_is_seeded_and_round_trips():
    method = check_deep_method("dsh", {"epochs": 5, "batch_size": 24, "lr": 0.01, "augment": "none"})
    assert method.margin == 32.0  # m = 2 bits


def test_margin_and_alpha_are_params():
    info = DatasetInfo("mnist5k", (28, 28, 1), 10, frozenset({"image"}))
    method = get_method("dsh")(12, 0, {"margin": 5.0, "alpha": 0.5}, info)
    assert (method.loss_fn.margin, method.loss_fn.alpha) == (5.0, 0.5)
