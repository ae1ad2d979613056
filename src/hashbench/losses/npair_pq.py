"""GPQ's N-pair product-quantization loss: every item's feature against every item's soft-quantized code."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NPairPQLoss(nn.Module):
    """mean_i [ -sum_j T_ij log softmax_j(S_ij) ] + reg * (mean |x_i|^2 + mean |q_i|^2).

    S_ij = <x_i, q_j> (features x, soft codes q, both (B, D)); T is Y Y^T with each row normalised to sum 1, so an
    item's own code and the codes of every item sharing a label with it are its targets (one-hot labels: same
    class). `reg` is the official 0.0005; with intra-normalised x and q the norm term is the constant 2M * reg.
    """

    def __init__(self, reg: float = 5e-4):
        super().__init__()
        self.reg = reg

    def forward(self, x: torch.Tensor, q: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        y = labels.float()
        share = y @ y.T
        targets = share / share.sum(1, keepdim=True).clamp(min=1e-12)
        ce = -(targets * F.log_softmax(x @ q.T, dim=1)).sum(1).mean()
        return ce + self.reg * (x.pow(2).sum(1).mean() + q.pow(2).sum(1).mean())
