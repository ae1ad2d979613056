"""The chance level of the cross-modal tables: random ±1 codes for the query images and the database texts of
mnist5k-tags, scored as DJSRH's protocol scores them (mAP@50, zero-hit queries count 0). Run after a `dvc repro` of
the default dataset (it reads data/raw and data/split), from the project root:

    .venv/bin/python benchmarks/random_codes.py [--bits 32] [--seeds 3]

One line per seed (I→T and T→I), then the means.
"""
import argparse

import numpy as np

from hashbench.data import open_dataset
from hashbench.evaluation import evaluate_hamming
from hashbench.splits import load_split


def random_codes(rng: np.random.Generator, n: int, bits: int) -> np.ndarray:
    return np.where(rng.random((n, bits)) < 0.5, -1, 1).astype(np.int8)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bits", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    split = load_split("data/split")
    with open_dataset("data/raw") as dataset:
        query_labels, db_labels = dataset.labels(split["query"]), dataset.labels(split["database"])
    means = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        nq, n = len(query_labels), len(db_labels)
        image_q, text_q = random_codes(rng, nq, args.bits), random_codes(rng, nq, args.bits)
        image_db, text_db = random_codes(rng, n, args.bits), random_codes(rng, n, args.bits)
        scores = [evaluate_hamming(q, db, query_labels, db_labels, topk=50, zero="count", map_all=False)["map"]
                  for q, db in ((image_q, text_db), (text_q, image_db))]
        means.append(scores)
        print(f"seed {seed}: I→T {scores[0]:.3f}  T→I {scores[1]:.3f}")
    i2t, t2i = np.mean(means, axis=0)
    print(f"mean over {args.seeds} seeds: I→T {i2t:.3f}  T→I {t2i:.3f}")


if __name__ == "__main__":
    main()
