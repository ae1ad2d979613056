import math

import torch

from hashbench.losses.dqn import DQNLoss


def test_hand_computed_cosine_and_quantization_terms():
    # z0 = (1, 0), z1 = (0, 1), z2 = (1, 1); classes a, b, a. s = +1 same class, -1 otherwise.
    # off-diagonal (s - cos)^2: (0,1): 1; (0,2): (1 - r)^2; (1,2): (-1 - r)^2, r = 1/sqrt 2 -> sum 1 + 3 = 4,
    # counted twice over the 9 ordered pairs; diagonal 0.
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = torch.tensor([[1, 0], [0, 1], [1, 0]])
    assert math.isclose(DQNLoss()(z, y).item(), 8 / 9, rel_tol=1e-6)
    # reconstruction 0: mean ||z||^2 = (1 + 1 + 2) / 3
    assert math.isclose(DQNLoss(lambda_q=1.0)(z, y, torch.zeros(3, 2)).item(), 8 / 9 + 4 / 3, rel_tol=1e-6)


def test_reconstruction_is_a_constant():
    z = torch.tensor([[1.0, 2.0]], requires_grad=True)
    recon = torch.zeros(1, 2, requires_grad=True)
    DQNLoss(lambda_q=1.0)(z, torch.tensor([[1]]), recon).backward()
    assert recon.grad is None and torch.allclose(z.grad, 2 * z.detach())  # cosine term is constant for one item
