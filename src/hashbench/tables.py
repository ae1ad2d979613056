"""Paper table specs: tables/<name>.yaml, one file per seed table (data, not code).

A table is rows (the paper's methods or ablation configurations) times columns; the columns are column groups
(a dataset and a retrieval direction, optionally with their own protocol) times the table's code lengths, the way
the papers print them. A row names the method that makes its numbers (none for a row shown only as the paper prints
it), its ablation params (`-S` overrides) and the reported numbers per group, one per code length (null = not known),
with the table's `source` or its own. Each (row, group, bits, seed) maps to one DVC experiment:

- real runs: the column's dataset, the paper preset of the row's method on that dataset (presets/), the row's
  params and the table's protocol;
- embedded runs (`--embedded`): the same rows on the table's embedded set (mnist5k or mnist5k-tags) with the
  embedded defaults, the row's params and the same protocol, so each table's mechanics and each ablation's sign
  can be seen on any machine.

Identical configs (e.g. several datasets of one table mapped to one embedded set) are one experiment. Methods and
datasets that other work adds are accepted by name only while they are listed in PENDING_METHODS and
PENDING_DATASETS; their cells are shown as pending.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import presets
from .config import read_mapping
from .errors import HashbenchError
from .protocol import ZERO_POLICIES, map_key

FOLDER = Path("tables")
# methods a table may name before their module lands in the registry (its cells then show as pending): none now
PENDING_METHODS: tuple[str, ...] = ()
PENDING_DATASETS: tuple[str, ...] = ()
EMBEDDED_SETS = ("mnist5k", "mnist5k-tags")
TABLE_FIELDS = ("title", "paper", "source", "protocol", "embedded", "digits", "data", "gpu_time", "notes", "bits",
                "groups", "rows")
GROUP_FIELDS = ("id", "dataset", "direction", "label", "protocol")
ROW_FIELDS = ("id", "label", "config", "method", "params", "reported", "source", "note")


@dataclass(frozen=True)
class Group:
    id: str
    dataset: str
    direction: str
    label: str
    protocol: dict

    @property
    def metric(self) -> str:
        """The metrics/eval.json key of this group's numbers, e.g. map@50."""
        return map_key(self.protocol["topk"], self.protocol["zero"])


@dataclass(frozen=True)
class Row:
    id: str
    label: str
    config: str
    method: str | None
    params: dict
    reported: dict  # group id -> list over bits (None = not known)
    source: str
    note: str = ""


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    paper: str
    source: str
    embedded: str
    digits: int
    data: str
    gpu_time: str
    notes: str
    bits: tuple[int, ...]
    groups: tuple[Group, ...]
    rows: tuple[Row, ...]


@dataclass
class Experiment:
    """One DVC experiment: its name (without the seed suffix) and its `-S` overrides (without the seed)."""

    base: str
    overrides: dict[str, Any]
    skip: str = ""  # why it is not run: a pending method/dataset or a blocking preset key
    cells: list = field(default_factory=list)  # (row id, group id, bits)

    def name(self, seed: int) -> str:
        return f"{self.base}-s{seed}"


def names(folder: Path = FOLDER) -> list[str]:
    if not folder.is_dir():
        raise HashbenchError(f"{folder}/: not found; run hashbench from the repository root")
    return sorted(p.stem for p in folder.glob("*.yaml"))


def _fail(path, text):
    raise HashbenchError(f"{path}: {text}")


def _fields(path, where, data, allowed):
    if not isinstance(data, dict):
        _fail(path, f"{where} must be a mapping")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        _fail(path, f"{where}: unknown field {unknown[0]!r}; allowed: {', '.join(allowed)}")


def _protocol(path, where, value) -> dict:
    _fields(path, where, value, ("topk", "zero"))
    topk, zero = value.get("topk"), value.get("zero", "count")
    if not (topk == "all" or (isinstance(topk, int) and not isinstance(topk, bool) and topk >= 1)):
        _fail(path, f"{where}.topk: {topk!r} is not allowed; use an integer >= 1 or all")
    if zero not in ZERO_POLICIES:
        _fail(path, f"{where}.zero: {zero!r} is not allowed; use one of {', '.join(ZERO_POLICIES)}")
    return {"topk": topk, "zero": zero}


def load(name: str, folder: Path = FOLDER) -> Table:
    """Read and check a table spec's structure (the experiment configs are checked by `check`)."""
    path = folder / f"{name}.yaml"
    if not path.is_file():
        raise HashbenchError(f"table: {name!r} is not allowed; use one of {', '.join(names(folder))}")
    data = read_mapping(path, "a table spec must be a mapping")
    _fields(path, "the spec", data, TABLE_FIELDS)
    for key in ("title", "paper", "source", "embedded"):
        if not isinstance(data.get(key), str) or not data[key]:
            _fail(path, f"{key} must be a non-empty string")
    if data["embedded"] not in EMBEDDED_SETS:
        _fail(path, f"embedded: {data['embedded']!r} is not allowed; use one of {', '.join(EMBEDDED_SETS)}")
    bits = data.get("bits")
    if not isinstance(bits, list) or not bits or not all(isinstance(b, int) and b > 0 for b in bits):
        _fail(path, "bits must be a list of positive integers")
    protocol = _protocol(path, "protocol", data.get("protocol"))
    groups = []
    for i, g in enumerate(data.get("groups") or []):
        _fields(path, f"groups[{i}]", g, GROUP_FIELDS)
        if not all(isinstance(g.get(k), str) for k in ("id", "dataset", "label")):
            _fail(path, f"groups[{i}] needs string id, dataset and label")
        proto = _protocol(path, f"groups[{i}].protocol", g["protocol"]) if "protocol" in g else protocol
        groups.append(Group(g["id"], g["dataset"], g.get("direction", "i2i"), g["label"], proto))
    group_ids = [g.id for g in groups]
    if not groups or len(set(group_ids)) != len(group_ids):
        _fail(path, "groups must be a non-empty list with unique ids")
    rows = []
    for i, r in enumerate(data.get("rows") or []):
        _fields(path, f"rows[{i}]", r, ROW_FIELDS)
        if not isinstance(r.get("id"), str) or not isinstance(r.get("label"), str):
            _fail(path, f"rows[{i}] needs a string id and label")
        reported = r.get("reported") or {}
        _fields(path, f"rows[{i}].reported", reported, group_ids)
        for gid, values in reported.items():
            if not isinstance(values, list) or len(values) != len(bits) or not all(
                    v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1)
                    for v in values):
                _fail(path, f"rows[{i}].reported.{gid} must list {len(bits)} numbers in [0, 1] or null, one per bits")
        source = r.get("source") or data["source"]
        params = r.get("params") or {}
        if not isinstance(params, dict):
            _fail(path, f"rows[{i}].params must be a mapping of -S keys to values")
        rows.append(Row(r["id"], r["label"], str(r.get("config") or ""), r.get("method"), dict(params),
                        {g: list(v) for g, v in reported.items()}, source, str(r.get("note") or "")))
    row_ids = [r.id for r in rows]
    if not rows or len(set(row_ids)) != len(row_ids):
        _fail(path, "rows must be a non-empty list with unique ids")
    digits = data.get("digits", 3)
    return Table(name, data["title"], data["paper"], data["source"], data["embedded"], int(digits),
                 str(data.get("data") or ""), str(data.get("gpu_time") or ""), str(data.get("notes") or "").strip(),
                 tuple(bits), tuple(groups), tuple(rows))


def _slug(group: Group, dataset: str, bits: int) -> str:
    k = group.protocol["topk"]
    return f"{dataset}-{bits}-k{k}" + ("skip" if group.protocol["zero"] == "skip" else "")


def experiments(table: Table, embedded: bool, folder: Path = presets.FOLDER) -> list[Experiment]:
    """Every experiment the table needs, identical configs merged, in the table's order."""
    out: dict[str, Experiment] = {}
    for row in table.rows:
        if row.method is None:
            continue
        for group in table.groups:
            dataset = table.embedded if embedded else group.dataset
            for bits in table.bits:
                base = f"{table.name}-{'emb-' if embedded else ''}{row.id}-{_slug(group, dataset, bits)}"
                if base not in out:
                    out[base] = _experiment(base, table, row, group, dataset, bits, embedded, folder)
                out[base].cells.append((row.id, group.id, bits))
    return list(out.values())


def _experiment(base, table, row, group, dataset, bits, embedded, folder) -> Experiment:
    overrides: dict[str, Any] = {"dataset": dataset, "method": row.method, "bits": bits}
    skip = ""
    if row.method in PENDING_METHODS:
        skip = f"method {row.method} is not in hashbench yet"
    elif not embedded and dataset in PENDING_DATASETS:
        skip = f"dataset {dataset} is not in hashbench yet"
    preset = None if embedded or skip else presets.find(row.method, dataset, folder)
    if preset:
        overrides.update(preset.overrides())
        blocked = [k for k in preset.blocking]
        if blocked:
            skip = f"preset {preset.name} needs {', '.join(blocked)}, which hashbench lacks yet"
    else:
        overrides["preset"] = None
    overrides.update(row.params)
    topk = group.protocol["topk"]
    overrides.update({"evaluate.protocol": "custom", "evaluate.topk": None if topk == "all" else topk,
                      "evaluate.zero": group.protocol["zero"]})
    return Experiment(base, overrides, skip)


def check(table: Table, base_params: dict) -> list[str]:
    """Check every experiment config of the table (real and embedded) against the stages' validation; return the
    pending reasons found. Raises HashbenchError naming the table, experiment and problem."""
    from . import experiment

    pending = []
    for embedded in (False, True):
        for exp in experiments(table, embedded):
            params = experiment.apply(base_params, {**exp.overrides, "seed": 0})
            try:
                reason = experiment.check(params, PENDING_METHODS, PENDING_DATASETS)
            except HashbenchError as err:
                raise HashbenchError(f"table {table.name}, experiment {exp.base}: {err}") from None
            if reason:
                pending.append(reason)
    return sorted(set(pending))
