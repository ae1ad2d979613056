"""HyP² loss (Xu et al., ACM MM 2022): learnable class proxies plus a penalty on irrelevant multi-label pairs."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import HashbenchError

# zeta = 1 - 2 d*/K, with d* the largest minimum Hamming distance that 2^n codewords of K bits can have, as the
# official repo tabulates it (codetable.xlsx): rows K, columns n = ceil(log2 C) = 1..8.
ZETA_TABLE = {
    12: (-1, -1 / 3, 0, 0, 1 / 3, 1 / 3, 1 / 3, 0.5),
    16: (-1, -0.25, 0, 0, 0, 0.25, 0.25, 0.375),
    24: (-1, -1 / 3, -1 / 12, 0, 0, 1 / 6, 1 / 6, 1 / 3),
    32: (-1, -0.3125, -0.125, 0, 0, 0, 0.125, 0.1875),
    36: (-1, -1 / 3, -1 / 9, 0, 1 / 18, 1 / 9, 1 / 9, 1 / 9),
    48: (-1, -1 / 3, -0.125, 0, 0, 0, 1 / 12, 1 / 12),
    64: (-1, -0.3125, -0.125, -0.03125, 0, 0, 0, 0.09375),
}


def zeta_for(bits: int, n_classes: int) -> float:
    """The tabulated margin for `bits` and `n_classes` (n = ceil(log2 C), at least 1)."""
    n = max(1, math.ceil(math.log2(max(n_classes, 1))))
    if bits not in ZETA_TABLE or n > 8:
        raise HashbenchError(
            f"hyp2.zeta: null needs the official table, which has no entry for bits={bits} and {n_classes} classes; "
            f"it covers bits {', '.join(map(str, ZETA_TABLE))} and up to 256 classes; set hyp2.zeta to a number "
            f"in [-1, 1]")
    return float(ZETA_TABLE[bits][n - 1])


class HyP2Loss(nn.Module):
    """L = L_pos + L_neg + L_pair on raw (un-squashed) outputs x (B, K) and multi-hot labels y (B, C).

    cos[i, c] = cosine(x_i, p_c) for C learnable proxies p (C, K).
    - L_pos: mean of 1 - cos over the (i, c) with y_ic = 1 (one mean over the whole batch, not per row);
    - L_neg: mean of relu(cos - zeta) over the (i, c) with y_ic = 0;
    - L_pair: over ordered pairs i != j of items that both have >= 2 labels and share none, the mean of
      beta * relu(cosine(x_i, x_j) - zeta); 0 when there is no such pair.
    Proxies start as Kaiming-normal with fan_out (std sqrt(2 / C)), drawn from `seed`.
    """

    def __init__(self, n_classes: int, bits: int, zeta: float, beta: float, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.proxies = nn.Parameter(torch.empty(n_classes, bits))
        nn.init.kaiming_normal_(self.proxies, mode="fan_out", generator=gen)
        self.zeta, self.beta = float(zeta), float(beta)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        has = y > 0
        cos = F.normalize(x, dim=1) @ F.normalize(self.proxies, dim=1).T
        pos = (1 - cos)[has].sum() / has.sum().clamp(min=1)
        neg = torch.relu(cos - self.zeta)[~has].sum() / (~has).sum().clamp(min=1)
        loss = pos + neg
        if self.beta > 0:
            multi = has.sum(1) > 1
            ym = has[multi].float()
            irrelevant = (ym @ ym.T) == 0  # the diagonal never counts: an item shares its own labels
            if irrelevant.any():
                xm = F.normalize(x[multi], dim=1)
                pair = torch.relu(xm @ xm.T - self.zeta)[irrelevant].mean()
                loss = loss + self.beta * pair
        return loss
