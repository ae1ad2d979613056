"""WSDHQ's adaptive cosine margin loss on the unit hypersphere (Wang et al., AAAI 2021; official net.py, WSDQH)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def adaptive_margins(tag_embeddings: torch.Tensor, gamma: float) -> torch.Tensor:
    """m_pn = 2^(1 - gamma) (1 - s_p . s_n)^gamma for unit tag embeddings s (T, T); gamma = 1 gives 1 - cos."""
    s = F.normalize(tag_embeddings, dim=1)
    return 2.0 ** (1.0 - gamma) * (1.0 - s @ s.T).clamp_min(0.0).pow(gamma)


class AdaptiveCosineMarginLoss(nn.Module):
    """sum_b sum_{p in P_b} sum_{n in N_b} max(0, m_pn - (z_b.s_p - z_b.s_n)) / sum_b |P_b| |N_b|.

    z_b = r_b / |r_b| (image features on the sphere), s_t = e_t / |e_t|; P_b / N_b are the image's positive /
    negative tags (targets 1 / 0). One normaliser per batch; an image without positive tags adds nothing.
    `adaptive=False` uses the official fixed margin (0.7) instead of m_pn. The B x T x T hinge tensor is built in
    chunks of images so that large vocabularies fit in memory.
    """

    def __init__(self, gamma: float = 1.0, adaptive: bool = True, margin: float = 0.7, max_elements: int = 1 << 24):
        super().__init__()
        self.gamma, self.adaptive, self.margin, self.max_elements = gamma, adaptive, margin, max_elements

    def forward(self, features: torch.Tensor, targets: torch.Tensor, tag_embeddings: torch.Tensor) -> torch.Tensor:
        z = F.normalize(features, dim=1)
        s = F.normalize(tag_embeddings, dim=1)
        t = s.shape[0]
        if self.adaptive:
            margins = adaptive_margins(tag_embeddings, self.gamma)
        else:
            margins = torch.full((t, t), float(self.margin), dtype=z.dtype, device=z.device)
        pos = targets > 0
        neg = ~pos
        count = (pos.sum(1) * neg.sum(1)).sum()
        if count == 0:
            return features.sum() * 0.0
        cos = z @ s.T  # (B, T)
        chunk = max(1, self.max_elements // max(t * t, 1))
        total = features.new_zeros(())
        for start in range(0, len(z), chunk):
            c = cos[start:start + chunk]
            hinge = torch.relu(margins.unsqueeze(0) - c.unsqueeze(2) + c.unsqueeze(1))  # [b, p, n]
            mask = pos[start:start + chunk].unsqueeze(2) & neg[start:start + chunk].unsqueeze(1)
            total = total + (hinge * mask).sum()
        return total / count
