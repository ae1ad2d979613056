"""CSQ's central similarity loss and its hash centers (Yuan et al., CVPR 2020; official
yuanli2333/Hadamard-Matrix-for-hashing: train.py and the hash-center tutorial notebook)."""
from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn


def hash_centers(n_classes: int, bits: int, seed: int = 0) -> torch.Tensor:
    """(C, bits) +-1 centers, one per class.

    When bits is a power of two and C <= 2 bits: the first C rows of [H; -H], H the bits x bits Hadamard matrix
    (distinct rows are bits / 2 apart). Otherwise random centers with exactly bits / 2 entries -1, redrawn (seeded, at
    most 10,000 times, as the notebook) until the smallest pairwise Hamming distance is >= 20 bits / 64 and the mean
    >= bits / 2 (the notebook's 64-bit thresholds, scaled); the last draw is kept if none qualifies."""
    if bits & (bits - 1) == 0 and n_classes <= 2 * bits:
        h = scipy.linalg.hadamard(bits)
        return torch.from_numpy(np.concatenate([h, -h])[:n_classes].astype(np.float32))
    rng = np.random.default_rng(seed)
    iu = np.triu_indices(n_classes, 1)
    for _ in range(10_000):
        centers = np.ones((n_classes, bits), np.float32)
        for row in centers:
            row[rng.choice(bits, bits // 2, replace=False)] = -1
        dist = ((bits - centers @ centers.T) / 2)[iu]
        if dist.size == 0 or (dist.min() >= 20 * bits / 64 and dist.mean() >= bits / 2):
            break
    return torch.from_numpy(centers)


def item_centers(labels: torch.Tensor, centers: torch.Tensor, tie_bits: torch.Tensor) -> torch.Tensor:
    """Each item's target: the sign of the mean of its labels' centers (single-label: its class's center); bits
    where that mean is 0 take `tie_bits`, one fixed random +-1 vector (the official code's `random_center`). An item
    without any label gets `tie_bits` (the official mean over no center is undefined)."""
    y = labels.float()
    mean = (y @ centers) / y.sum(1, keepdim=True).clamp(min=1)
    return torch.where(mean == 0, tie_bits.expand_as(mean), torch.sign(mean))


class CSQLoss(nn.Module):
    """BCE(h', c') + lambda_q mean((|h| - 1)^2) on tanh codes h (B, K) with h' = (h + 1) / 2, c' = (c + 1) / 2.

    The BCE is the mean over the B x K entries (torch's BCELoss, logs clamped at -100 as there); c are the items'
    centers (``item_centers``). lambda_q is the official lambda2 (0.05 for ResNet-50; 0.001 for AlexNet, 0.0001 at 64
    bits on ImageNet); the official pairwise term (lambda1) is 0 in every published command, so it is left out.
    """

    def __init__(self, lambda_q: float):
        super().__init__()
        self.lambda_q = lambda_q

    def forward(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        center = F.binary_cross_entropy(0.5 * (h + 1), 0.5 * (targets + 1))
        return center + self.lambda_q * (h.abs() - 1).pow(2).mean()
