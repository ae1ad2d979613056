"""Paper presets: presets/<method>-<dataset>.yaml, the official settings of a method on a dataset its paper used,
each value with its source (see presets/README.md). A preset is data: `params` are `-S` overrides applied as
written; `pending` are official settings hashbench cannot express yet (never applied), each with its reason in
`reasons`; `blocking` names the pending keys (or `dataset`) without which a real run would measure something
else."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import read_mapping
from .errors import HashbenchError

FOLDER = Path("presets")
FIELDS = ("method", "dataset", "paper", "params", "pending", "blocking", "sources", "reasons", "notes")


@dataclass(frozen=True)
class Preset:
    name: str
    method: str
    dataset: str
    paper: str
    params: dict[str, Any]
    pending: dict[str, Any] = field(default_factory=dict)
    blocking: tuple[str, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)  # pending key -> why hashbench cannot apply it yet
    notes: str = ""

    def overrides(self) -> dict[str, Any]:
        """What a run of this preset sets: method, dataset, the preset's name and its params."""
        return {"method": self.method, "dataset": self.dataset, "preset": self.name, **self.params}


def names(folder: Path = FOLDER) -> list[str]:
    if not folder.is_dir():
        raise HashbenchError(f"{folder}/: not found; run hashbench from the repository root")
    return sorted(p.stem for p in folder.glob("*.yaml"))


def load(name: str, folder: Path = FOLDER) -> Preset:
    path = folder / f"{name}.yaml"
    if not path.is_file():
        raise HashbenchError(f"preset: {name!r} is not allowed; use one of {', '.join(names(folder))}")
    data = read_mapping(path, "a preset must be a mapping")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise HashbenchError(f"{path}: unknown field {unknown[0]!r}; allowed: {', '.join(FIELDS)}")
    for key in ("method", "dataset", "paper"):
        if not isinstance(data.get(key), str):
            raise HashbenchError(f"{path}: {key} must be a string")
    if name != f"{data['method']}-{data['dataset']}":
        raise HashbenchError(f"{path}: a preset is named <method>-<dataset>; this one holds "
                             f"{data['method']} on {data['dataset']}")
    params, pending = data.get("params") or {}, data.get("pending") or {}
    sources, blocking = data.get("sources") or {}, tuple(data.get("blocking") or ())
    reasons = data.get("reasons") or {}
    for key in (*params, *pending):
        if not sources.get(key):
            raise HashbenchError(f"{path}: {key} has no source; add it under `sources`")
    for key in pending:
        if not isinstance(reasons.get(key), str) or not reasons[key].strip():
            raise HashbenchError(f"{path}: pending {key} has no reason; say under `reasons` why it cannot be applied")
    extra = sorted(set(reasons) - set(pending))
    if extra:
        raise HashbenchError(f"{path}: reasons.{extra[0]} is not a pending key; allowed: {', '.join(pending) or 'none'}")
    for key in blocking:
        if key != "dataset" and key not in pending:
            raise HashbenchError(f"{path}: blocking {key!r} is neither `dataset` nor a pending key")
    for key in ("method", "dataset", "preset", "bits", "seed"):
        if key in params:
            raise HashbenchError(f"{path}: params.{key} is set by the run, not the preset")
    return Preset(name, data["method"], data["dataset"], data["paper"], dict(params), dict(pending), blocking,
                  dict(sources), dict(reasons), str(data.get("notes") or "").strip())


def find(method: str, dataset: str, folder: Path = FOLDER) -> Preset | None:
    """The preset of a method on a dataset, if its paper used that dataset."""
    name = f"{method}-{dataset}"
    return load(name, folder) if (folder / f"{name}.yaml").is_file() else None


def advice(params: dict, embedded: frozenset | set, folder: Path = FOLDER) -> str | None:
    """The train stage's warning line, or None: a real dataset run with the method's embedded defaults (every key
    the paper preset sets still at its default), or a named preset whose values were changed afterwards."""
    from .experiment import lookup, same
    from .methods import REGISTRY

    method, dataset, chosen = params.get("method"), params.get("dataset"), params.get("preset")
    if chosen:
        preset = load(chosen, folder)
        if (preset.method, preset.dataset) != (method, dataset):
            return (f"warning: preset {chosen} is for {preset.method} on {preset.dataset}, but this run is {method} "
                    f"on {dataset}")
        changed = [k for k, v in preset.params.items() if not _has(params, k, v, lookup, same)]
        missing = ", ".join(sorted(preset.pending))
        parts = [f"{len(changed)} value(s) differ from the preset ({', '.join(changed)})" if changed else "",
                 f"official settings not applied yet: {missing}" if missing else ""]
        text = "; ".join(p for p in parts if p)
        return f"warning: preset {chosen}: {text}" if text else None
    if dataset in embedded or method not in REGISTRY:
        return None
    preset = find(method, dataset, folder)
    schema, block = REGISTRY[method].schema, params.get(method) or {}
    keys = [k.split(".", 1)[1] for k in (preset.params if preset else {}) if k.startswith(f"{method}.")]
    keys = [k for k in dict.fromkeys(["backbone", *keys]) if k in schema]
    at_default = [same(block.get(k, schema[k].default), schema[k].default) for k in keys]
    if not keys or not all(at_default) or (not preset and block.get("backbone", "smallcnn") != "smallcnn"):
        return None
    shown = ", ".join(f"{k} {schema[k].default}" for k in keys if k in ("backbone", "epochs", "iterations", "lr"))
    if preset:
        return (f"warning: {method} on {dataset} runs the embedded defaults ({shown}); use preset {preset.name}: "
                f"hashbench preset run {preset.name}")
    return (f"warning: {method} on {dataset} runs the embedded defaults ({shown}); no paper preset exists for "
            f"{method} on {dataset} (hashbench preset list)")


def _has(params, key, value, lookup, same) -> bool:
    try:
        return same(lookup(params, key), value)
    except KeyError:
        return False
