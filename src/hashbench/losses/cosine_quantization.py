"""WSDHQ's supervised (tag-weighted) quantization loss, as the official code computes it."""
from __future__ import annotations

import torch
from torch import nn


class CosineQuantizationLoss(nn.Module):
    """(1/B) sum_b sum_t (e_t^T (r_b - x_hat_b))^2 with x_hat_b = C^T h_b.

    As in the official code (and despite the paper's "cosine" name) it uses the RAW features r (tanh outputs, not
    normalised) and the RAW tag embeddings e_t. The reconstruction is a constant (codes and codebooks are fixed
    between updates), so the gradient reaches the network only.
    """

    def forward(self, features: torch.Tensor, reconstruction: torch.Tensor,
                tag_embeddings: torch.Tensor) -> torch.Tensor:
        projected = (features - reconstruction.detach()) @ tag_embeddings.T  # (B, T)
        return projected.pow(2).sum(1).mean()
