import math

import numpy as np
import pytest
import torch
from helpers import check_deep_method

from hashbench.losses.hashnet import HashNetLoss, continuation_scale
from hashbench.methods import DatasetInfo, TrainSet, get_method


def _case():
    # h1 = (1, 0) with label a; h2 rows (1, 0) {a}, (0, 1) {b}, (-1, 0) {a, b}; alpha = 1:
    # x = (1, 0, -1), s = (1, 0, 1)
    h1 = torch.tensor([[1.0, 0.0]])
    h2 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    l0 = math.log(1 + math.e) - 1
    l1 = math.log(2.0)
    l2 = math.log(1 + math.exp(-1)) + 1
    return h1, torch.tensor([[1, 0]]), h2, torch.tensor([[1, 0], [0, 1], [1, 1]]), (l0, l1, l2)


def test_paper_balanced_weights_are_mean_similar_plus_mean_dissimilar():
    h1, y1, h2, y2, (l0, l1, l2) = _case()
    loss = HashNetLoss(alpha=1.0)(h1, y1, h2, y2)
    assert math.isclose(loss.item(), (l0 + l2) / 2 + l1, rel_tol=1e-6)


def test_official_class_num_weighting():
    h1, y1, h2, y2, (l0, l1, l2) = _case()
    loss = HashNetLoss(alpha=1.0, positive_weight=2.0)(h1, y1, h2, y2)
    assert math.isclose(loss.item(), (2 * (l0 + l2) + l1) / (2 * 2 + 1), rel_tol=1e-6)


def test_alpha_scales_the_inner_product_and_missing_group_adds_nothing():
    h = torch.tensor([[1.0, 1.0]])
    loss = HashNetLoss(alpha=0.5)(h, torch.tensor([[1]]), h, torch.tensor([[1]]))  # x = 1, similar only
    assert math.isclose(loss.item(), math.log(1 + math.e) - 1, rel_tol=1e-6)


def test_continuation_schedule_refreshes_every_200_passes():
    assert continuation_scale(1) == 1.0 and continuation_scale(199) == 1.0
    assert math.isclose(continuation_scale(200), math.sqrt(2.0))
    assert math.isclose(continuation_scale(450), math.sqrt(3.0))  # t = 400: (1 + 0.005 * 400)^0.5


@pytest.mark.slow
def test_method_fits_is_seeded_and_round_trips():
    method = check_deep_method("hashnet", {"iterations": 24, "batch_size": 8, "continuation_step": 5})
    assert method.alpha == 10 / 16
    history = method.trainer.history
    assert history[-1]["iteration"] == 24 and history[-1]["beta"] > 1.0  # the continuation has raised beta


def test_pairs_are_between_the_two_loaders_batches():
    info = DatasetInfo("mnist5k", (28, 28, 1), 10, frozenset({"image"}))
    method = get_method("hashnet")(32, 0, {"positive_weight": 5.0}, info)
    assert method.pairs.positive_weight == 5.0 and method.alpha == 10 / 32
    plan = method.plan(TrainSet(np.zeros((40, 28, 28, 1), np.uint8), labels=np.eye(10, dtype=np.uint8)[np.arange(40) % 10]))
    assert list(plan.streams) == ["first", "second"] and plan.iterations == 1500
