"""DSH's contrastive hashing loss (Liu, Wang, Shan & Chen, CVPR 2016; official lhmRyan/deep-supervised-hashing-DSH,
src/caffe/layers/hashing_loss_layer.cpp)."""
from __future__ import annotations

import torch
from torch import nn

from .dpsh import share_label


class DSHLoss(nn.Module):
    """sum_{i<j} [s_ij D_ij + (1 - s_ij) max(m - D_ij, 0)] / (2 N (N - 1)) + alpha sum_i || |b_i| - 1 ||_1 / N.

    b (N, K) are the raw outputs of one batch (no activation), D_ij = ||b_i - b_j||^2, s_ij = 1 iff the items share
    a label; every unordered pair of the batch counts once. m = 2 K and alpha = 0.01 are the paper's (the official
    CIFAR-10 net: 12 bits, margin 24). Normalisers as the official Caffe layer, whose gradient carries the paper's
    factor 1/2 on the pair terms (the loss value it reports leaves the 1/2 out).
    """

    def __init__(self, margin: float, alpha: float = 0.01):
        super().__init__()
        self.margin, self.alpha = margin, alpha

    def forward(self, b: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        n = b.shape[0]
        if n < 2:
            return self.alpha * (b.abs() - 1).abs().sum() / max(n, 1)
        s = share_label(labels, labels)
        dist = (b.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(-1)
        pair = s * dist + (1 - s) * torch.relu(self.margin - dist)
        upper = torch.ones(n, n, dtype=torch.bool, device=b.device).triu(1)
        return pair[upper].sum() / (2 * n * (n - 1)) + self.alpha * (b.abs() - 1).abs().sum() / n
