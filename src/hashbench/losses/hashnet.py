"""HashNet's weighted pairwise cross-entropy and its continuation schedule (Cao et al., ICCV 2017; official
thuml/HashNet, pytorch/src/loss.py and network.py)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .dpsh import share_label


def continuation_scale(iteration: int, gamma: float = 0.005, power: float = 0.5, step: int = 200) -> float:
    """beta of h = tanh(beta z) in training forward pass number `iteration` (counted from 1): (1 + gamma t)^power
    with t = `iteration` rounded down to a multiple of `step`, as the official network refreshes beta every 200
    passes (beta = 1 for the first 199)."""
    return (1.0 + gamma * (iteration // step * step)) ** power


class HashNetLoss(nn.Module):
    """Weighted mean over all pairs (i, j) of one batch h1 (B1, K) and another h2 (B2, K) of
    l_ij = log(1 + e^x_ij) - s_ij x_ij, with x_ij = alpha h1_i . h2_j (alpha = 10 / bits, the official
    sigmoid_param) and s_ij = 1 iff the items share a label.

    Weights: ``positive_weight = None`` is the paper's balance, w_ij = |S| / |S_1| for similar and |S| / |S_0| for
    dissimilar pairs, so L = mean over similar pairs + mean over dissimilar pairs (an empty group adds 0);
    a number c is the official train.py's ``class_num``: L = (c sum_similar l + sum_dissimilar l) / (c |S_1| + |S_0|).
    log(1 + e^x) is exact (softplus); the official code replaces it by x beyond x = 15 (a difference below 3.1e-7 per
    pair).
    """

    def __init__(self, alpha: float, positive_weight: float | None = None):
        super().__init__()
        self.alpha, self.positive_weight = alpha, positive_weight

    def forward(self, h1: torch.Tensor, labels1: torch.Tensor, h2: torch.Tensor,
                labels2: torch.Tensor) -> torch.Tensor:
        s = share_label(labels1, labels2)
        x = self.alpha * h1 @ h2.T
        loss = F.softplus(x) - s * x
        pos, neg = s > 0, s <= 0
        if self.positive_weight is None:
            return sum(loss[m].sum() / m.sum() for m in (pos, neg) if m.any())
        c = self.positive_weight
        return (c * loss[pos].sum() + loss[neg].sum()) / (c * pos.sum() + neg.sum())

