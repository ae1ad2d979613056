"""plot: PNG pictures of the curves, the training loss and a ranked list. Reads params: plot.

The ranked list shows `plot.queries` queries spread evenly over the query set (image → image) with their top
`plot.top` items, ties broken by database index as in the evaluator.
"""
import csv
import json
from pathlib import Path

import numpy as np

from hashbench import plots
from hashbench.config import Param, load_params, validate
from hashbench.data import open_dataset
from hashbench.pipeline import read_codes
from hashbench.quantization import reconstruct
from hashbench.runconfig import check_run_matches
from hashbench.splits import load_split
from hashbench.stage import run_stage

SCHEMA = {"queries": Param(6, int, ge=1, le=50), "top": Param(10, int, ge=1, le=30)}
OUT = Path("plots/images")
LOSS = Path("dvclive/plots/metrics/loss.tsv")
CODES = Path("data/codes.h5")


def read_loss(path: Path) -> list[dict]:
    """The train stage's per-epoch loss as DVCLive logged it (a TSV with a `step` column per epoch)."""
    with path.open(newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t")
        return [{"epoch": int(row["step"]), "loss": float(row["loss"])} for row in rows]


def read_curves(folder: str) -> dict[str, list[dict]]:
    return {f.stem: json.loads(f.read_text()) for f in sorted(Path(folder).glob("*.json"))}


def top_items(attrs, codes, picks: np.ndarray, top: int) -> np.ndarray:
    query = codes["query/image"][picks].astype(np.float32)
    if attrs["quantized"]:  # asymmetric score: query feature . reconstructed database item
        score = -(query @ reconstruct(codes["codebooks"], codes["database/image"]).T)
    else:  # Hamming distance, up to a constant
        score = -(query @ codes["database/image"].astype(np.float32).T)
    return np.argsort(score, axis=1, kind="stable")[:, :top]


def main():
    p = validate("plot", load_params().get("plot"), SCHEMA)
    attrs, codes = read_codes(CODES)
    check_run_matches(attrs.get("run", {}), load_params(), str(CODES))
    title = f"{attrs['method']}, {int(attrs['bits'])} bits, {attrs['dataset']}"
    OUT.mkdir(parents=True, exist_ok=True)
    plots.curves(read_curves("plots/pr"), "recall", "precision", f"precision-recall: {title}", OUT / "pr.png")
    plots.curves(read_curves("plots/precision_at_n"), "n", "precision", f"precision@N: {title}",
                 OUT / "precision_at_n.png", xlog=True)
    plots.loss(read_loss(LOSS), title, OUT / "loss.png")
    split = load_split("data/split")
    picks = np.unique(np.linspace(0, len(split["query"]) - 1, p["queries"]).astype(np.int64))
    ranked = top_items(attrs, codes, picks, p["top"])
    with open_dataset("data/raw") as dataset:
        queries = split["query"][picks]
        items = split["database"][ranked]
        q_labels, i_labels = dataset.labels(queries), dataset.labels(items.ravel()).reshape(*items.shape, -1)
        relevant = (q_labels[:, None, :].astype(np.int32) * i_labels).sum(-1) > 0
        ranked_images = dataset.images(items.ravel()).reshape(*items.shape, *dataset.image_shape)
        plots.ranked_list(dataset.images(queries), ranked_images, relevant, f"top {p['top']}: {title}",
                          OUT / "ranked.png")


if __name__ == "__main__":
    run_stage(main, outputs=[OUT])
