"""train: fit the method named by `method` on the train split. Reads params: method, bits, seed, <method block>.

Writes models/model.pt (+ model.json), metrics/train.json and plots/loss.json (loss per epoch).
"""
import json
import time
from pathlib import Path

from hashbench.config import Param, load_params, require
from hashbench.data import open_dataset
from hashbench.methods import get_method
from hashbench.pipeline import dataset_info, save_model, train_set
from hashbench.splits import load_split
from hashbench.stage import run_stage

OUTS = ["models/model.pt", "models/model.json", "metrics/train.json", "plots/loss.json"]


def main():
    params = load_params()
    method_cls = get_method(params.get("method"))
    bits = require(params, "bits", Param(32, int, ge=1))
    seed = require(params, "seed", Param(0, int, ge=0))
    with open_dataset("data/raw") as dataset:
        method = method_cls(bits, seed, params.get(method_cls.name), dataset_info(dataset))
        data = train_set(method_cls, dataset, load_split("data/split"))
    start = time.perf_counter()
    history = method.fit(data)
    seconds = time.perf_counter() - start
    save_model(method)
    epochs = len(history)
    summary = {"method": method.name, "bits": bits, "seed": seed, "loss": history[-1]["loss"], "epochs": epochs,
               "train_items": len(data), "seconds": round(seconds, 3),
               "samples_per_second": round(len(data) * epochs / max(seconds, 1e-9), 1)}
    Path("metrics").mkdir(exist_ok=True)
    Path("plots").mkdir(exist_ok=True)
    Path("metrics/train.json").write_text(json.dumps(summary, indent=2) + "\n")
    Path("plots/loss.json").write_text(json.dumps(history, indent=1) + "\n")


if __name__ == "__main__":
    run_stage(main, outputs=OUTS)
