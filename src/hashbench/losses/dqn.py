"""DQN's pairwise cosine loss plus its product-quantization term (Cao, Long, Wang, Zhu & Wen, AAAI 2016; official
thulab/DeepHash, DeepHash/model/dqn/dqn.py)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .dpsh import share_label


class DQNLoss(nn.Module):
    """mean_ij (s_ij - cos(z_i, z_j))^2 + lambda_q mean_i ||z_i - x_hat_i||^2.

    z (B, D) are the network's tanh features; s_ij = +1 if items i and j share a label, -1 otherwise; the mean runs
    over all B x B pairs, the diagonal included, as the official code. x_hat are the items' reconstructions from
    the codebooks and codes (C^T h), constants between codebook updates (see :mod:`hashbench.quantization`); without
    them (``reconstruction=None``, the official first codebook period where lambda is 0) only the cosine term counts.
    The official lambda_q is 1e-4 (examples/dqn/train_val.sh).
    """

    def __init__(self, lambda_q: float = 1e-4):
        super().__init__()
        self.lambda_q = lambda_q

    def forward(self, z: torch.Tensor, labels: torch.Tensor, reconstruction: torch.Tensor | None = None):
        unit = F.normalize(z, dim=1)
        target = 2.0 * share_label(labels, labels) - 1.0
        loss = (target - unit @ unit.T).pow(2).mean()
        if reconstruction is not None:
            loss = loss + self.lambda_q * (z - reconstruction.detach()).pow(2).sum(1).mean()
        return loss
