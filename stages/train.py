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

from hashbench import presets
from hashbench.config import Param, load_params, require
from hashbench.data import open_dataset
from hashbench.embedded import EMBEDDED
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
    preset = params.get("preset")
    if preset is not None:
        presets.load(preset)  # an unknown name stops here with one line
    warning = presets.advice(params, frozenset(EMBEDDED))
    if warning:
        print(warning, file=sys.stderr)
    with open_dataset("data/raw") as dataset:
        method = method_cls(bits, seed, params.get(method_cls.name), dataset_info(dataset))
        data = train_set(method_cls, dataset, load_split("data/split"))
    start = time.perf_counter()
    history = method.fit(data)
    seconds = time.perf_counter() - start
    save_model(method, preset)
    epochs = len(history)
    summary = {"method": method.name, "bits": bits, "seed": seed, "preset": preset, "loss": history[-1]["loss"],
               "epochs": epochs, "train_items": len(data), "seconds": round(seconds, 3),
               "samples_per_second": round(len(data) * epochs / max(seconds, 1e-9), 1)}
    Path("metrics").mkdir(exist_ok=True)
    Path("plots").mkdir(exist_ok=True)
    Path("metrics/train.json").write_text(json.dumps(summary, indent=2) + "\n")
    Path("plots/loss.json").write_text(json.dumps(history, indent=1) + "\n")


if __name__ == "__main__":
    run_stage(main, outputs=OUTS)
