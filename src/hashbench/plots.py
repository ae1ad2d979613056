"""PNG pictures for people: PR and precision@N curves per direction, the training loss, and a ranked list."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

NAMES = {"i2i": "image → image", "i2t": "image → text", "t2i": "text → image", "t2t": "text → text"}


def _save(fig, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def curves(curves_by_direction: dict[str, list[dict]], x: str, y: str, title: str, path, xlog=False) -> None:
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, rows in curves_by_direction.items():
        ax.plot([r[x] for r in rows], [r[y] for r in rows], marker=".", label=NAMES.get(name, name))
    ax.set(xlabel=x, ylabel=y, title=title, ylim=(0, 1.02))
    if xlog:
        ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def loss(history: list[dict], title: str, path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([h["epoch"] for h in history], [h["loss"] for h in history], marker=".")
    ax.set(xlabel="epoch", ylabel="training loss", title=title)
    ax.grid(alpha=0.3)
    _save(fig, path)


def ranked_list(query_images, ranked_images, relevant, title: str, path) -> None:
    """One row per query: the query, then its top retrievals framed green (relevant) or red (not)."""
    rows, top = relevant.shape
    fig, axes = plt.subplots(rows, top + 1, figsize=(1.1 * (top + 1), 1.2 * rows + 0.4), squeeze=False)
    for i in range(rows):
        cells = [(query_images[i], None)] + [(ranked_images[i, j], bool(relevant[i, j])) for j in range(top)]
        for j, (img, rel) in enumerate(cells):
            ax = axes[i, j]
            ax.imshow(np.squeeze(img), cmap="gray" if img.shape[-1] == 1 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            color = "black" if rel is None else ("#2ca02c" if rel else "#d62728")
            for spine in ax.spines.values():
                spine.set_edgecolor(color)
                spine.set_linewidth(3 if rel is not None else 1)
            if i == 0:
                ax.set_title("query" if j == 0 else str(j), fontsize=8)
    fig.suptitle(title, fontsize=9)
    _save(fig, path)
