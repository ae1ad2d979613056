"""An experiment config = params.yaml plus `-S key=value` overrides: apply them, write them as DVC arguments, and
check the result the way the stages would (method, bits, dataset block, modalities, tags, evaluate) without
running anything."""
from __future__ import annotations

import copy
import math
from typing import Any

import yaml

from .errors import HashbenchError


def apply(params: dict, overrides: dict[str, Any]) -> dict:
    """A copy of `params` with each dotted key (`djsrh.eta`, `mirflickr25k.split.n_query`) set; a mapping value
    replaces the whole block at its key."""
    out = copy.deepcopy(params)
    for key, value in overrides.items():
        *path, leaf = key.split(".")
        node = out
        for part in path:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[leaf] = copy.deepcopy(value)
    return out


def lookup(params: dict, key: str) -> Any:
    """The value at a dotted key; KeyError when any part is absent."""
    node = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def same(a: Any, b: Any) -> bool:
    """Equal values as a YAML round trip sees them (1 == 1.0; floats to 1e-12 relative)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return a == b


def dvc_args(overrides: dict[str, Any], base: dict) -> list[str]:
    """`-S` arguments for `dvc exp run` that turn params.yaml (`base`) into `apply(base, overrides)`. Values are
    written as YAML scalars; a key params.yaml lacks gets DVC's `+` (add) prefix; a mapping value replaces the whole
    block: its keys are set one by one and the block's other keys are removed with `~` (e.g. a split protocol
    switched from quota to lists, whose keys differ)."""
    args = []
    for key, value in overrides.items():
        if isinstance(value, dict):
            try:
                old = lookup(base, key)
            except KeyError:
                old = {}
            args += [a for sub in (old if isinstance(old, dict) else {}) if sub not in value
                     for a in ("-S", f"~{key}.{sub}")]
            for sub, item in value.items():
                args += _scalar_arg(f"{key}.{sub}", item, base)
        else:
            args += _scalar_arg(key, value, base)
    return args


def _scalar_arg(key: str, value: Any, base: dict) -> list[str]:
    if isinstance(value, (dict, list)):
        raise HashbenchError(f"{key}: {value!r} is not allowed as an override; use a single value or a flat mapping")
    text = yaml.safe_dump(value, default_flow_style=True).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    try:
        lookup(base, key)
        prefix = ""
    except KeyError:
        prefix = "+"
    return ["-S", f"{prefix}{key}={text}"]


def check(params: dict, pending_methods=(), pending_datasets=()) -> str | None:
    """Raise HashbenchError (one line) if the stages would refuse this config; return the name of a pending
    method or dataset when the config cannot be checked further because it is not in this version yet."""
    from . import protocol, tags
    from .config import Param, require, validate
    from .datasets import REGISTRY as DATASETS
    from .datasets import check_dataset_name, dataset_block
    from .methods import REGISTRY, DatasetInfo

    method_name, dataset_name = params.get("method"), params.get("dataset")
    if method_name not in REGISTRY:
        if method_name in pending_methods:
            return f"method {method_name}"
        raise HashbenchError(f"method: {method_name!r} is not allowed; use one of {', '.join(REGISTRY)}")
    method = REGISTRY[method_name]
    bits = require(params, "bits", Param(32, int, ge=1))
    require(params, "seed", Param(0, int, ge=0))
    method.check_bits(bits)
    validate(method.name, params.get(method.name), method.schema)
    validate("evaluate", params.get("evaluate"), protocol.SCHEMA)
    tags.validate_params(params.get("tags"))
    if dataset_name not in DATASETS:
        if dataset_name in pending_datasets:
            return f"dataset {dataset_name}"
        check_dataset_name(dataset_name)
    block = dataset_block(dataset_name, params.get(dataset_name))
    if "unlabeled" in method.needs and not block["split"].get("labeled_unlabeled"):
        raise HashbenchError(f"{dataset_name}.split.labeled_unlabeled: method {method.name} needs the split's "
                             f"unlabeled part; set it to true")
    method.check_dataset(DatasetInfo(dataset_name, (), 0, frozenset(DATASETS[dataset_name].modalities)))
    return None
