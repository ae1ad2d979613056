import math

import torch

from hashbench.losses.dpsh import DPSHLoss


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
