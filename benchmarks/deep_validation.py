"""Validation of a deep method's settings on a split carved from the mnist5k TRAIN split only (never the queries):
20 train images per class (seeded) as queries, the other train images as both the training set and the database;
mAP@all (zero-hit queries counted) with the method's own score (Hamming, or the asymmetric score for quantizers).

Run in a DVC clone whose data/raw and data/split hold mnist5k (after `dvc exp run -S dataset=mnist5k ...`):

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/deep_validation.py dpsh 0 optimizer=sgd lr=0.05

Prints one JSON line: the params, the validation mAP and the training loss per 10 epochs.
"""
import json
import sys

import numpy as np

from hashbench.data import open_dataset
from hashbench.evaluation import evaluate_aqd, evaluate_hamming
from hashbench.methods import TrainSet, get_method
from hashbench.pipeline import dataset_info
from hashbench.splits import load_split


def main(name: str, seed: int, overrides: list[str], per_class: int = 20, bits: int = 32) -> dict:
    params = {}
    for item in overrides:
        key, value = item.split("=", 1)
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    with open_dataset("data/raw") as dataset:
        train = np.asarray(load_split("data/split")["train"])
        images, labels, info = dataset.images(train), dataset.labels(train), dataset_info(dataset)
    classes = labels.argmax(1)
    rng = np.random.default_rng(12345)
    query = np.sort(np.concatenate([rng.choice(np.flatnonzero(classes == c), per_class, replace=False)
                                    for c in range(labels.shape[1])]))
    rest = np.setdiff1d(np.arange(len(train)), query)
    method = get_method(name)(bits, seed, params, info)
    method.runtime.progress = False
    history = method.fit(TrainSet(images[rest], labels=labels[rest]))
    q, d = method.encode(images[query], role="query"), method.encode(images[rest])
    if method.quantized:
        result = evaluate_aqd(q, d, method.codebooks(), labels[query], labels[rest], topk=None, zero="count")
    else:
        result = evaluate_hamming(q, d, labels[query], labels[rest], topk=None, zero="count")
    losses = [round(row["loss"], 4) for row in history]
    return {"method": name, "seed": seed, "params": params, "val_map": round(result["map"], 4),
            "loss_every10": losses[::10] + [losses[-1]]}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), sys.argv[3:])))
