"""PNG pictures for people: PR and precision@N panels per direction, the training loss, a ranked list, a t-SNE map
of the database codes, and a paper table's mAP against bits (ours beside the reported numbers)."""
from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

NAMES = {"i2i": "image → image", "i2t": "image → text", "t2i": "text → image", "t2t": "text → text"}


def _save(fig, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _panels(n: int, width=4.2, height=3.6):
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows + 0.5), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def curve_panels(curves_by_direction: dict[str, list[dict]], x: str, y: str, what: str, run: str, path,
                 caption: str = "", xlog=False) -> None:
    """One panel per retrieval direction, titled `<what>: <direction>` over `run` (method, bits, dataset)."""
    fig, axes = _panels(max(len(curves_by_direction), 1))
    for ax, (name, rows) in zip(axes, curves_by_direction.items()):
        ax.plot([r[x] for r in rows], [r[y] for r in rows], marker=".")
        ax.set(xlabel=x, ylabel=y, ylim=(0, 1.02), title=f"{what}: {NAMES.get(name, name)}\n{run}")
        ax.title.set_fontsize(9)
        if xlog:
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
    if caption:
        fig.text(0.01, 0.005, caption, fontsize=7, ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.07 if caption else 0, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def loss(history: list[dict], title: str, path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([h["epoch"] for h in history], [h["loss"] for h in history], marker=".")
    ax.set(xlabel="epoch", ylabel="training loss", title=title)
    ax.grid(alpha=0.3)
    _save(fig, path)


def ranked_list(query_images, ranked_images, relevant, notes, title: str, path) -> None:
    """One row per query: the query, then its top retrievals framed green (relevant) or red (not), each with a
    note under it (its distance or score and the size of the tie it sits in)."""
    rows, top = relevant.shape
    fig, axes = plt.subplots(rows, top + 1, figsize=(1.15 * (top + 1), 1.35 * rows + 0.4), squeeze=False)
    for i in range(rows):
        cells = [(query_images[i], None, "")] + [(ranked_images[i, j], bool(relevant[i, j]), notes[i][j])
                                                 for j in range(top)]
        for j, (img, rel, note) in enumerate(cells):
            ax = axes[i, j]
            ax.imshow(np.squeeze(img), cmap="gray" if img.shape[-1] == 1 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(note, fontsize=6, labelpad=1)
            color = "black" if rel is None else ("#2ca02c" if rel else "#d62728")
            for spine in ax.spines.values():
                spine.set_edgecolor(color)
                spine.set_linewidth(3 if rel is not None else 1)
            if i == 0:
                ax.set_title("query" if j == 0 else str(j), fontsize=8)
    fig.suptitle(title, fontsize=9)
    _save(fig, path)


def embedding_map(points: np.ndarray, labels: np.ndarray, title: str, path) -> None:
    """A 2-D map (t-SNE of the codes) coloured by each item's first label; unlabelled items grey."""
    first = np.where(labels.any(1), labels.argmax(1), -1)
    fig, ax = plt.subplots(figsize=(6, 5.4))
    cmap = plt.get_cmap("tab20" if labels.shape[1] > 10 else "tab10")
    for c in np.unique(first):
        sel = first == c
        color = "#bbbbbb" if c < 0 else cmap(c % cmap.N)
        ax.scatter(points[sel, 0], points[sel, 1], s=6, color=color, label="none" if c < 0 else str(c), alpha=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    if len(np.unique(first)) <= 21:
        ax.legend(fontsize=6, markerscale=2, title="first label", title_fontsize=7, loc="best", ncol=2)
    _save(fig, path)


def table_panels(panels: list[dict], title: str, path) -> None:
    """mAP against bits, one panel per dataset/direction: per row ours solid (± std over seeds) and the reported
    numbers dashed, in one colour. panels: [{"title", "ylabel", "lines": [{"label", "bits", "ours", "std",
    "paper"}]}] where ours/std/paper are lists over bits with None where missing."""
    fig, axes = _panels(max(len(panels), 1), width=4.6, height=3.8)
    cmap = plt.get_cmap("tab10")
    for ax, panel in zip(axes, panels):
        for i, line in enumerate(panel["lines"]):
            color = cmap(i % 10)
            bits = np.asarray(line["bits"], float)
            ours = np.array([np.nan if v is None else v for v in line["ours"]], float)
            std = np.array([0.0 if v is None else v for v in line["std"]], float)
            paper = np.array([np.nan if v is None else v for v in line["paper"]], float)
            if np.isfinite(ours).any():
                ax.errorbar(bits, ours, yerr=std, color=color, marker="o", ms=3, capsize=2, label=line["label"])
            if np.isfinite(paper).any():
                ax.plot(bits, paper, color=color, ls="--", marker="x", ms=4,
                        label=None if np.isfinite(ours).any() else f"{line['label']} (paper only)")
        ax.set(xlabel="bits", ylabel=panel["ylabel"], title=panel["title"])
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    width = fig.get_size_inches()[0]
    fig.suptitle(textwrap.fill(title, int(width * 13)) + "\nsolid: ours (mean ± std over seeds), dashed: the paper",
                 fontsize=9)
    _save(fig, path)
