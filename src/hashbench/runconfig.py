"""The run's resolved settings: params.yaml checked once, then sliced per stage.

dvc.yaml cannot name "the block of the chosen method" without interpolating ``${method}``, and an unknown name then
fails inside DVC ("Parameters 'foo' are missing") before any of our checks run. So the first stage, ``params``,
depends on the whole params.yaml, validates the names and blocks that the later stages pick by name, and writes one
JSON slice per stage (``data/params/<stage>.json``: defaults filled in, nothing else). Those stages depend on their
slice instead of on params, so they rerun exactly when what they read changes.

The same check lets the stages after train refuse a model that params.yaml no longer describes (see
:func:`check_run_matches`): DVC's run-cache can restore a model trained under other params when params.yaml was
edited by a concurrent ``dvc exp run`` while the first one trained.
"""
from __future__ import annotations

import json
from pathlib import Path

from .config import Param, require, validate
from .data import atomic_write_json
from .datasets import check_dataset_name, dataset_block
from .errors import HashbenchError
from .training.runtime import validate_runtime

FOLDER = Path("data/params")
TOP = {"bits": Param(32, int, ge=1), "seed": Param(0, int, ge=0)}


def train_settings(params: dict) -> dict:
    """{method, bits, seed, params}: what the train stage builds the method from, checked."""
    from .methods import get_method

    method = get_method(params.get("method"))
    bits = require(params, "bits", TOP["bits"])
    seed = require(params, "seed", TOP["seed"])
    method.check_bits(bits)
    preset = params.get("preset")
    if preset is not None:
        from .presets import load

        load(preset)  # an unknown name stops here with one line
    return {"method": method.name, "bits": bits, "seed": seed, "preset": preset,
            "params": validate(method.name, params.get(method.name), method.schema)}


def resolve(params: dict) -> dict[str, dict]:
    """Stage name -> the settings that stage reads, validated (one-line HashbenchError otherwise)."""
    name = check_dataset_name(params.get("dataset"))
    block = dataset_block(name, params.get(name))
    converter = {k: v for k, v in block.items() if k != "split"}
    if block["split"]["protocol"] == "lists":  # the download stage matches the published lists to the items
        converter["split"] = block["split"]
    return {
        "download": {"dataset": name, name: converter},
        "split": {"dataset": name, "seed": block["seed"], "split": block["split"]},
        "train": {**train_settings(params), "runtime": validate_runtime(params)},
        "encode": {k: v for k, v in validate_runtime(params).items() if k in ("device", "workers")},
    }


def write_slices(params: dict, folder: str | Path = FOLDER) -> dict[str, dict]:
    slices = resolve(params)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stage, settings in slices.items():
        atomic_write_json(folder / f"{stage}.json", settings)
    return slices


def check_run_matches(recorded: dict, params: dict, what: str) -> None:
    """Stop in one line when the model or codes in `what` were made under other train settings than params.yaml's
    (method, bits, seed and the method's block, defaults filled in)."""
    wanted = train_settings(params)
    for key in ("method", "bits", "seed", "params"):
        if recorded.get(key) != wanted[key]:
            if key == "params":
                diff = sorted(k for k in wanted["params"] if recorded.get("params", {}).get(k) != wanted["params"][k])
                detail = ", ".join(f"{wanted['method']}.{k}: {json.dumps(recorded.get('params', {}).get(k))} there, "
                                   f"{json.dumps(wanted['params'][k])} in params.yaml" for k in diff[:3])
            else:
                detail = f"{key}: {json.dumps(recorded.get(key))} there, {json.dumps(wanted[key])} in params.yaml"
            raise HashbenchError(f"{what} was made under other params ({detail}); rerun `dvc repro` (use "
                                 f"`dvc exp run --queue` or `--temp` for concurrent experiments)")
