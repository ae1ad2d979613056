"""GPQ's subspace entropy minimax on unlabelled data: a gradient-reversal layer and the negative entropy."""
from __future__ import annotations

import torch
from torch import nn


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Identity forward; the gradient flowing back is multiplied by -scale."""
    return _ReverseGradient.apply(x, scale)


class NegativeEntropyLoss(nn.Module):
    """mean_i sum_c p_ic log(p_ic + eps), p = softmax(logits): the negative prediction entropy.

    Minimising it raises the entropy for the parameters in front of the logits (GPQ's prototypes); behind a
    gradient-reversal layer the feature extractor lowers it instead (the minimax)."""

    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(logits, dim=1)
        return (p * torch.log(p + self.eps)).sum(1).mean()
