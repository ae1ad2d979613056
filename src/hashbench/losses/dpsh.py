"""DPSH's pairwise likelihood loss (Li, Wang & Kang, IJCAI 2016; official jiangqy/DPSH-pytorch, DPSH_CIFAR_10.py)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def share_label(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """s_ij = 1.0 where multi-hot rows a_i and b_j share a label (single-label: same class), else 0.0."""
    return ((a.float() @ b.float().T) > 0).float()


class DPSHLoss(nn.Module):
    """[sum_ij (log(1 + e^theta_ij) - s_ij theta_ij) + eta sum_i ||sign(u_i) - u_i||^2] / (B N).

    u (B, K) are the batch's raw network outputs (no tanh); the second set U (N, K) is, in the official code, a bank
    holding the latest outputs of all N train items (the batch's rows included, refreshed before the loss) and is a
    constant; theta_ij = u_i . U_j / 2; s_ij = 1 iff the items share a label. Both terms are divided by B N, as the
    official code does (the paper writes plain sums); eta is its lambda (10 on CIFAR-10, 50 on NUS-WIDE). sign(0) = 0
    and the sign carries no gradient, as torch.sign. log(1 + e^x) is computed stably (softplus), as the official
    "log trick".
    """

    def __init__(self, eta: float = 10.0):
        super().__init__()
        self.eta = eta

    def forward(self, u: torch.Tensor, labels: torch.Tensor, bank: torch.Tensor,
                bank_labels: torch.Tensor) -> torch.Tensor:
        theta = 0.5 * u @ bank.T
        likelihood = (F.softplus(theta) - share_label(labels, bank_labels) * theta).sum()
        quantization = (torch.sign(u) - u).pow(2).sum()
        return (likelihood + self.eta * quantization) / (u.shape[0] * bank.shape[0])
