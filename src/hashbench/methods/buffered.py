"""The codebook machinery WSDHQ and DQN share: a buffer of every training image's latest training-forward features
(filled batch by batch, so stale by up to one refresh period, as both official codes keep it), codebooks and codes
rebuilt from it every `update_every_epochs` epochs, and that state in checkpoints."""
from __future__ import annotations

import numpy as np
import torch

from ..quantization import reconstruct
from ..training.checkpoint import generator_state, set_generator_state


class BufferedCodebooks:
    """Mixin for a DeepMethod with `params["update_every_epochs"]` and a `_refresh_codebooks(features) -> codes`
    that sets `self.books`."""

    def _start_buffer(self, n: int, dim: int) -> None:
        self.buffer = np.zeros((n, dim), np.float32)
        self.filled = np.zeros(n, bool)
        self.codes, self.books = None, None
        self.icm_rng = np.random.default_rng([self.seed, 1])

    def _remember(self, idx: np.ndarray, features: torch.Tensor) -> torch.Tensor | None:
        """Buffer the batch's features; return the reconstructions of its current codes (None before the first
        codebooks, and when the quantization loss is off: `lambda_q` 0)."""
        recon = None
        if self.books is not None and self.params["lambda_q"] > 0:
            recon = torch.from_numpy(reconstruct(self.books, self.codes[idx])).to(features.device)
        self.buffer[idx] = features.detach().cpu().numpy()
        self.filled[idx] = True
        return recon

    def on_epoch_end(self, epoch, ctx) -> dict:
        # after every `update_every_epochs` full passes; a pass cut short by an iteration count refreshes nothing
        full = (epoch + 1) * ctx.per_epoch <= ctx.total
        refreshed = full and (epoch + 1) % self.params["update_every_epochs"] == 0
        if refreshed:
            self.buffer = ctx.merge_rows(self.buffer, self.filled)
            self.codes = self._refresh_codebooks(self.buffer)
        return {"codebook_refresh": refreshed}

    def on_train_end(self, ctx) -> None:
        if self.books is None:  # fewer epochs than one refresh period: build them from the last buffer
            self.buffer = ctx.merge_rows(self.buffer, self.filled)
            self.codes = self._refresh_codebooks(self.buffer)

    def train_state(self) -> dict:
        state = {"buffer": torch.from_numpy(self.buffer.copy()), "filled": torch.from_numpy(self.filled.copy()),
                 "icm_rng": generator_state(self.icm_rng)}
        if self.books is not None:
            state.update(books=torch.from_numpy(self.books.copy()), codes=torch.from_numpy(self.codes.astype(np.int64)))
        return state

    def load_train_state(self, state: dict) -> None:
        self.buffer, self.filled = state["buffer"].numpy().copy(), state["filled"].numpy().copy()
        set_generator_state(self.icm_rng, state["icm_rng"])
        if "books" in state:
            self.books, self.codes = state["books"].numpy().copy(), state["codes"].numpy().astype(np.uint8)
