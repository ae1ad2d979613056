"""train: fit the method named by `method` on the train split. Reads params: method, bits, seed, preset,
<method block>.

Writes models/model.pt (+ model.json), metrics/train.json and plots/loss.json (loss per epoch). `preset` names the
paper preset the run was made from (hashbench preset run NAME sets it with the preset's values); it is recorded in
model.json. One warning line goes to stderr when a real dataset runs the method's embedded defaults (naming the
preset to use) or when a named preset's values were changed.
"""
import json
import sys
import time
from pathlib import Path

import torch

from hashbench import presets
from hashbench.config import load_params
from hashbench.data import atomic_write_json, atomic_write_text, open_dataset
from hashbench.embedded import EMBEDDED
from hashbench.methods import get_method
from hashbench.pipeline import dataset_info, run_identity, save_model, train_set
from hashbench.runconfig import check_run_matches, train_settings
from hashbench.splits import load_split
from hashbench.stage import run_stage

OUTS = ["models/model.pt", "models/model.json", "metrics/train.json", "plots/loss.json"]


def main():
    params = load_params()
    settings = train_settings(params)
    method_cls = get_method(settings["method"])
    bits, seed, preset = settings["bits"], settings["seed"], settings["preset"]
    warning = presets.advice(params, frozenset(EMBEDDED))
    if warning:
        print(warning, file=sys.stderr)
    with open_dataset("data/raw") as dataset:
        method = method_cls(bits, seed, settings["params"], dataset_info(dataset))
        data = train_set(method_cls, dataset, load_split("data/split"))
    start = time.perf_counter()
    history = method.fit(data)
    seconds = time.perf_counter() - start
    # params.yaml edited while training (e.g. a second `dvc exp run` in this workspace): DVC would record the new
    # values for this model in dvc.lock and its run-cache, so nothing is written
    check_run_matches(run_identity(method), load_params(), "the model just trained")
    save_model(method, preset=preset)
    epochs = len(history)
    summary = {"method": method.name, "bits": bits, "seed": seed, "preset": preset, "loss": history[-1]["loss"],
               "epochs": epochs, "train_items": len(data), "seconds": round(seconds, 3),
               "samples_per_second": round(len(data) * epochs / max(seconds, 1e-9), 1),
               # bit-reproducible only for the same device and thread count (see the README)
               "device": str(getattr(method, "device", "cpu")), "torch_threads": torch.get_num_threads()}
    Path("metrics").mkdir(exist_ok=True)
    Path("plots").mkdir(exist_ok=True)
    atomic_write_json("metrics/train.json", summary)
    atomic_write_text("plots/loss.json", json.dumps(history, indent=1) + "\n")


if __name__ == "__main__":
    run_stage(main, outputs=OUTS)
