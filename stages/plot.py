"""plot: PNG pictures of the curves, the training loss, a ranked list and a t-SNE map. Reads params: plot.

- pr.png / precision_at_n.png: one panel per retrieval direction, titled with the direction, method, bits and
  dataset. Over Hamming radii an empty retrieved set counts precision 0, and radii at which no query retrieves
  anything are left out (the evaluate stage writes the curves that way); the caption says so.
- ranked.png: `plot.queries` queries spread evenly over the query set (image → image) with their top `plot.top`
  items, ties broken by database index as in the evaluator; under each item its Hamming distance (or asymmetric
  score) and the size of the tie it sits in (how many database items share that distance with the query).
- tsne.png: t-SNE (scikit-learn, seeded) of the codes of up to `plot.tsne_points` database items spread evenly over
  the database (the reconstructions for quantized methods), coloured by each item's first label; 0 = no map.
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

SCHEMA = {"queries": Param(6, int, ge=1, le=50), "top": Param(10, int, ge=1, le=30),
          "tsne_points": Param(1000, int, ge=0, le=20000)}
OUT = Path("plots/images")
LOSS = Path("dvclive/plots/metrics/loss.tsv")
CODES = Path("data/codes.h5")
PR_CAPTION = ("Precision and recall are averaged over queries; over Hamming radii a query that retrieves nothing "
              "within the radius counts precision 0, and points where both means are 0 (no relevant item retrieved "
              "yet by any query) are left out.")


def read_loss(path: Path) -> list[dict]:
    """The train stage's per-epoch loss as DVCLive logged it (a TSV with a `step` column per epoch)."""
    with path.open(newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t")
        return [{"epoch": int(row["step"]), "loss": float(row["loss"])} for row in rows]


def read_curves(folder: str) -> dict[str, list[dict]]:
    return {f.stem: json.loads(f.read_text()) for f in sorted(Path(folder).glob("*.json"))}


def database_points(attrs, codes) -> np.ndarray:
    """What the database is ranked by: +-1 codes, or the reconstructions of quantized items."""
    if attrs["quantized"]:
        return reconstruct(codes["codebooks"], codes["database/image"])
    return codes["database/image"].astype(np.float32)


def ranked(attrs, codes, picks: np.ndarray, top: int) -> tuple[np.ndarray, list[list[str]]]:
    """The stable top items of each picked query and a note per item: distance (or score) and its tie size."""
    query = codes["query/image"][picks].astype(np.float32)
    score = query @ database_points(attrs, codes).T  # larger is closer (Hamming distance = (bits - score) / 2)
    order = np.argsort(-score, axis=1, kind="stable")[:, :top]
    notes = []
    for row, items in zip(score, order):
        values = row[items]
        ties = [int(np.count_nonzero(row == v)) for v in values]
        if attrs["quantized"]:
            notes.append([f"s {v:.3f} · tie {t}" for v, t in zip(values, ties)])
        else:
            notes.append([f"d {int(round((attrs['bits'] - v) / 2))} · tie {t}" for v, t in zip(values, ties)])
    return order, notes


def tsne_map(attrs, codes, labels, n_points: int, title: str, path) -> None:
    from sklearn.manifold import TSNE

    points = database_points(attrs, codes)
    pick = np.unique(np.linspace(0, len(points) - 1, min(n_points, len(points))).astype(np.int64))
    perplexity = float(min(30, max(1, (len(pick) - 1) // 3)))
    xy = TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=0).fit_transform(points[pick])
    plots.embedding_map(xy, labels(pick), f"t-SNE of {len(pick)} database codes: {title}", path)


def main():
    p = validate("plot", load_params().get("plot"), SCHEMA)
    attrs, codes = read_codes(CODES)
    check_run_matches(attrs.get("run", {}), load_params(), str(CODES))
    run = f"{attrs['method']}, {int(attrs['bits'])} bits, {attrs['dataset']}"
    OUT.mkdir(parents=True, exist_ok=True)
    plots.curve_panels(read_curves("plots/pr"), "recall", "precision", "precision-recall", run, OUT / "pr.png",
                       caption=PR_CAPTION)
    plots.curve_panels(read_curves("plots/precision_at_n"), "n", "precision", "precision@N", run,
                       OUT / "precision_at_n.png", xlog=True)
    plots.loss(read_loss(LOSS), run, OUT / "loss.png")
    split = load_split("data/split")
    picks = np.unique(np.linspace(0, len(split["query"]) - 1, p["queries"]).astype(np.int64))
    order, notes = ranked(attrs, codes, picks, p["top"])
    with open_dataset("data/raw") as dataset:
        queries = split["query"][picks]
        items = split["database"][order]
        q_labels, i_labels = dataset.labels(queries), dataset.labels(items.ravel()).reshape(*items.shape, -1)
        relevant = (q_labels[:, None, :].astype(np.int32) * i_labels).sum(-1) > 0
        ranked_images = dataset.images(items.ravel()).reshape(*items.shape, *dataset.image_shape)
        plots.ranked_list(dataset.images(queries), ranked_images, relevant, notes,
                          f"top {p['top']} (image → image): {run}", OUT / "ranked.png")
        if p["tsne_points"]:
            tsne_map(attrs, codes, lambda pick: dataset.labels(split["database"][pick]), p["tsne_points"], run,
                     OUT / "tsne.png")


if __name__ == "__main__":
    run_stage(main, outputs=[OUT])
