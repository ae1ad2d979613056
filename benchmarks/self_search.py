"""Does a search with an image find that image itself? Run after `make repro` (or any `dvc exp run`), from the project
root: it loads models/, encodes the first N database images of data/split as a database, searches each of them as a
query (exactly as `hashbench search` does) and prints the share found among their own top 10 and the median rank.

    .venv/bin/python benchmarks/self_search.py [--n 1000]

Binary codes: the image itself is always at Hamming distance 0, so it is among the top 10 unless 10 other items share
its code. Quantized codes: both scores of `Index.search`, the evaluator's asymmetric inner product and the asymmetric
squared L2 distance (`score="l2"`, `hashbench search --score l2`). The last line: `self_top10=... [self_top10_l2=...]`.
"""
import argparse

import numpy as np
import torch

import hashbench
from hashbench.data import open_dataset
from hashbench.splits import load_split


def self_ranks(index: hashbench.Index, queries: np.ndarray, score: str) -> np.ndarray:
    hits = index.search(queries, len(index), score=score)
    return np.array([int(np.flatnonzero(row == i)[0]) for i, row in enumerate(hits.ids)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="database images searched as their own queries")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = hashbench.load_model("models")
    if "image" not in model.modalities:
        raise SystemExit(f"{model.name} encodes {', '.join(model.modalities)} only; this benchmark needs images")
    with open_dataset("data/raw") as dataset:
        images = dataset.images(load_split("data/split")["database"][:args.n])
    codes = model.encode(images)
    index = hashbench.Index(codes, codebooks=model.codebooks() if model.quantized else None)
    queries = model.encode(images, role="query")
    print(f"{model.name}, {model.bits} bits, {len(images)} database images searched as their own queries")
    scores = ("inner", "l2") if model.quantized else ("inner",)
    found = {}
    for score in scores:
        ranks = self_ranks(index, queries, score)
        found[score] = float((ranks < 10).mean())
        name = "Hamming distance" if not model.quantized else f"score {score}"
        print(f"{name:>16}: itself among its top 10 for {found[score]:.3f}, median rank {np.median(ranks):.0f} "
              f"(0 = first)")
    print(" ".join(f"self_top10{'' if s == 'inner' else '_' + s}={found[s]:.3f}" for s in scores))


if __name__ == "__main__":
    main()
