import math

import pytest
import torch
from helpers import check_deep_method

from hashbench.losses.dpsh import DPSHLoss
from hashbench.methods import DatasetInfo, get_method


def test_hand_computed_likelihood_and_quantization():
    # one batch item u = (0.5, -2), label a; bank rows (1, 0) label a, (0, 2) label b.
    # theta = u.U / 2 = (0.25, -2); s = (1, 0); sign(u) = (1, -1): ||sign(u) - u||^2 = 0.25 + 1 = 1.25
    u = torch.tensor([[0.5, -2.0]])
    bank = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    likelihood = (math.log(1 + math.exp(0.25)) - 0.25) + math.log(1 + math.exp(-2.0))
    loss = DPSHLoss(eta=10.0)(u, torch.tensor([[1, 0]]), bank, torch.tensor([[1, 0], [0, 1]]))
    assert math.isclose(loss.item(), (likelihood + 10.0 * 1.25) / (1 * 2), rel_tol=1e-6)


def test_sign_of_zero_is_zero_and_large_theta_is_stable():
    u = torch.tensor([[0.0, 400.0]], requires_grad=True)
    loss = DPSHLoss(eta=1.0)(u, torch.tensor([[1]]), u.detach(), torch.tensor([[1]]))
    # theta = 400^2 / 2 = 80000, similar: log(1 + e^t) - t = 0 (no overflow); quantization (0 - 0)^2 + (1 - 400)^2
    assert math.isclose(loss.item(), 399.0 ** 2, rel_tol=1e-6)
    loss.backward()
    assert torch.isfinite(u.grad).all()


@pytest.mark.slow
def test_method_fits_is_seeded_and_round_trips():
    method = check_deep_method("dpsh", {"epochs": 4, "batch_size": 16, "lr": 0.05})
    assert method.bank.shape == (48, 16) and method.filled.all()  # every training output is in the bank


def test_defaults_are_the_official_settings_where_they_fit():
    method = get_method("dpsh")(32, 0, None, DatasetInfo("mnist5k", (28, 28, 1), 10, frozenset({"image"})))
    p = method.params
    assert (p["batch_size"], p["momentum"], p["weight_decay"], p["eta"]) == (128, 0.0, 1e-5, 10.0)
    # the from-scratch deviation: DeepHash-pytorch's RMSprop at 1e-4, the official lr step (50 epochs) kept
    assert (p["optimizer"], p["lr"], p["lr_step_epochs"]) == ("rmsprop", 1e-4, 50)
    assert isinstance(method.optimizers()[0].optimizer, torch.optim.RMSprop)


def test_sgd_option_builds_the_official_optimizer():
    info = DatasetInfo("mnist5k", (28, 28, 1), 10, frozenset({"image"}))
    method = get_method("dpsh")(32, 0, {"optimizer": "sgd", "lr": 0.05}, info)
    optimizer = method.optimizers()[0].optimizer
    assert type(optimizer) is torch.optim.SGD and optimizer.param_groups[0]["lr"] == 0.05
