import math

import pytest
import torch
from helpers import check_deep_method

from hashbench.errors import HashbenchError
from hashbench.losses.dqn import DQNLoss
from hashbench.methods import DatasetInfo, get_method


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


@pytest.mark.slow
def test_method_fits_quantizes_and_round_trips():
    method = check_deep_method("dqn", {"epochs": 4, "batch_size": 16, "feature_dim": 24, "lr": 0.02, "lr_step": 100,
                                        "augment": "none"})
    # refreshed after epochs 2 and 4: codes of every training image against the final books
    assert [h["codebook_refresh"] for h in method.trainer.history] == [False, True, False, True]
    assert method.codes.shape == (48, 2)


def test_bits_must_fill_whole_codebooks():
    info = DatasetInfo("mnist5k", (28, 28, 1), 10, frozenset({"image"}))
    with pytest.raises(HashbenchError, match=r"^bits: 12 is not allowed for dqn with 256 codewords per book; use a multiple of 8"):
        get_method("dqn")(12, 0, None, info)
    with pytest.raises(HashbenchError, match=r"^dqn\.feature_dim: 2 is too small for 4 codebooks"):
        get_method("dqn")(32, 0, {"feature_dim": 2}, info)
    assert get_method("dqn")(12, 0, {"codewords": 64}, info).n_books == 2
