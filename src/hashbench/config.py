"""Params validation: every block of params.yaml is checked against a small schema before any work starts.

A schema maps each allowed key to a `Param` (default, type, allowed values or range). Errors are one line that
names the block and key, the bad value and what is allowed, e.g. ``dnnh.lr: -0.1 is not allowed; use a number > 0``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import HashbenchError

_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list"}


@dataclass(frozen=True)
class Param:
    """One allowed key: its default, its type, and optionally the allowed values or a numeric range."""

    default: Any
    kind: type
    choices: tuple | None = None
    gt: float | None = None  # exclusive lower bound
    ge: float | None = None  # inclusive lower bound
    le: float | None = None  # inclusive upper bound
    nullable: bool = False  # None (YAML null) allowed, e.g. "auto"
    items: type | None = None  # element type of a list

    def allowed(self) -> str:
        if self.choices is not None:
            text = "one of " + ", ".join(str(c) for c in self.choices)
        else:
            text = _TYPE_NAMES[self.kind]
            bounds = []
            if self.gt is not None:
                bounds.append(f"> {self.gt:g}")
            if self.ge is not None:
                bounds.append(f">= {self.ge:g}")
            if self.le is not None:
                bounds.append(f"<= {self.le:g}")
            if bounds:
                text += " " + " and ".join(bounds)
            if self.kind is list and self.items is not None:
                text += f" of {_TYPE_NAMES[self.items].split(' ', 1)[1]}s"
        return text + (" or null" if self.nullable else "")

    def check(self, where: str, value: Any) -> Any:
        if value is None and self.nullable:
            return None
        if not _is_kind(value, self.kind):
            raise HashbenchError(f"{where}: {value!r} is not allowed; use {self.allowed()}")
        if self.kind is float:
            value = float(value)
            if not math.isfinite(value):
                raise HashbenchError(f"{where}: {value!r} is not allowed; use {self.allowed()}")
        if self.kind is list and self.items is not None:
            for item in value:
                if not _is_kind(item, self.items):
                    raise HashbenchError(f"{where}: item {item!r} is not allowed; use {self.allowed()}")
            value = [float(v) if self.items is float else v for v in value]
        bad = (
            (self.choices is not None and value not in self.choices)
            or (self.gt is not None and not value > self.gt)
            or (self.ge is not None and not value >= self.ge)
            or (self.le is not None and not value <= self.le)
        )
        if bad:
            raise HashbenchError(f"{where}: {value!r} is not allowed; use {self.allowed()}")
        return value


def _is_kind(value: Any, kind: type) -> bool:
    if isinstance(value, bool):  # YAML true/false must not pass as 1/0
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def validate(block: str, given: dict | None, schema: dict[str, Param]) -> dict:
    """Return `given` with defaults filled in, after checking every key against `schema`."""
    given = {} if given is None else given
    if not isinstance(given, dict):
        raise HashbenchError(f"{block}: must be a mapping of keys to values, got {given!r}")
    unknown = sorted(set(given) - set(schema))
    if unknown:
        raise HashbenchError(f"{block}.{unknown[0]}: unknown key; allowed keys: {', '.join(schema)}")
    return {key: spec.check(f"{block}.{key}", given.get(key, spec.default)) for key, spec in schema.items()}


def load_params(path: str | Path = "params.yaml") -> dict:
    """Read params.yaml (the stage's working directory is the repository root)."""
    path = Path(path)
    if not path.is_file():
        raise HashbenchError(f"{path}: file not found; run the stage from the repository root")
    return read_mapping(path, "must be a mapping of top-level keys")


def read_mapping(path: Path, shape: str) -> dict:
    """A YAML file that must hold a mapping; one-line errors naming the file (`shape` says what it must be)."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise HashbenchError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise HashbenchError(f"{path}: {shape}")
    return data


def require(params: dict, key: str, spec: Param) -> Any:
    """Check one top-level key (dataset, method, bits, seed)."""
    if key not in params:
        raise HashbenchError(f"params.yaml: missing top-level key {key!r}; add `{key}: {spec.default}`")
    return spec.check(key, params[key])
