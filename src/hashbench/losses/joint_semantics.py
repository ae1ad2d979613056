"""DJSRH's joint-semantics affinity and its reconstruction loss (Su, Zhong & Zhang, ICCV 2019).

Per batch of m image-text pairs:

- ``cosine_affinity``: S = 2 * F^ F^T - 1 with F^ the row-L2-normalised features. An all-zero row (an image with no
  signal, a text with no word) normalises to the zero vector, so its row and column of S are -1 everywhere,
  diagonal included (what torch's ``F.normalize`` gives the official code; inferred, the paper does not say).
- ``JointSemanticsAffinity``: S~ = beta*S_I + (1-beta)*S_T (or S_I / S_T alone, the DJSRH-1/-2 ablations),
  S = (1-eta)*S~ + eta*S~ S~^T / m, S <- mu*S. m is a CONSTANT divisor (the configured batch size, 32 in the
  official code), not the size of the current batch. S is a target: computed without gradient.
- ``ReconstructionLoss``: with B_I, B_T the row-normalised tanh outputs (not their signs),
  L = lambda1*MSE(B_I B_I^T, S) + MSE(B_I B_T^T, S) + lambda2*MSE(B_T B_T^T, S), each MSE the MEAN over the m x m
  entries, diagonal included, as the official code (the paper writes Frobenius norms; the factor is 1/m^2).
- ``alpha_for_epoch``: the tanh scale alpha = sqrt(epoch + 1), epoch counted from 0; alpha = 1 throughout with the
  fixed schedule (DJSRH-6).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

AFFINITIES = ("joint", "image", "text")
ALPHA_SCHEDULES = ("sqrt", "fixed")


def alpha_for_epoch(epoch: int, schedule: str = "sqrt") -> float:
    """tanh scale for `epoch` (counted from 0): sqrt(epoch + 1), or 1.0 for the fixed schedule."""
    if schedule == "fixed":
        return 1.0
    if schedule == "sqrt":
        return math.sqrt(epoch + 1.0)
    raise ValueError(f"alpha schedule {schedule!r}; use one of {', '.join(ALPHA_SCHEDULES)}")


def cosine_affinity(features: torch.Tensor) -> torch.Tensor:
    """2 * cos - 1 between all rows (m, d) -> (m, m); an all-zero row gives -1 everywhere."""
    unit = F.normalize(features.float(), p=2, dim=1)
    return 2.0 * unit @ unit.T - 1.0


class JointSemanticsAffinity(nn.Module):
    """The constant target S of one batch from frozen image features and raw bag-of-words texts."""

    def __init__(self, beta: float, eta: float, mu: float, divisor: float, mode: str = "joint"):
        super().__init__()
        if mode not in AFFINITIES:
            raise ValueError(f"affinity mode {mode!r}; use one of {', '.join(AFFINITIES)}")
        self.beta, self.eta, self.mu, self.divisor, self.mode = beta, eta, mu, float(divisor), mode

    @torch.no_grad()
    def forward(self, image_features: torch.Tensor | None, text_features: torch.Tensor | None) -> torch.Tensor:
        if self.mode == "image":
            mixed = cosine_affinity(image_features)
        elif self.mode == "text":
            mixed = cosine_affinity(text_features)
        else:
            mixed = self.beta * cosine_affinity(image_features) + (1.0 - self.beta) * cosine_affinity(text_features)
        target = (1.0 - self.eta) * mixed + self.eta * (mixed @ mixed.T) / self.divisor
        return self.mu * target  # no_grad: a constant target


class ReconstructionLoss(nn.Module):
    """lambda1*MSE(C_II, S) + MSE(C_IT, S) + lambda2*MSE(C_TT, S) on cosines of the tanh codes (mean-reduced)."""

    def __init__(self, lambda1: float, lambda2: float):
        super().__init__()
        self.lambda1, self.lambda2 = lambda1, lambda2

    def forward(self, image_codes: torch.Tensor, text_codes: torch.Tensor, target: torch.Tensor):
        """Return (total, parts) with parts = {"ii", "it", "tt"} the three unweighted MSE values (floats)."""
        b_i = F.normalize(image_codes, p=2, dim=1)
        b_t = F.normalize(text_codes, p=2, dim=1)
        ii = F.mse_loss(b_i @ b_i.T, target)
        it = F.mse_loss(b_i @ b_t.T, target)  # rows: images, columns: texts
        tt = F.mse_loss(b_t @ b_t.T, target)
        total = self.lambda1 * ii + it + self.lambda2 * tt
        return total, {"ii": ii.item(), "it": it.item(), "tt": tt.item()}
