"""Evaluation protocols: the `evaluate` params block, which protocol a run uses, and the metric keys that name it.

A metric key carries its protocol, so numbers computed under different protocols never share a key (and
`dvc metrics diff` never prints a "change" between, say, WSDHQ's mAP@5000 and DJSRH's mAP@50):

- ``map@K`` is AP truncated at K (normalised by the relevant items retrieved in the top K), queries without a
  relevant item in the top K counting AP = 0 (``zero: count``); ``map@K_skip`` is the same with those queries left
  out of the mean (``zero: skip``, WSDHQ's protocol). K is an integer or ``all`` (the whole ranking).
- ``precision@radiusR`` is the precision within Hamming radius R (binary codes only).

Each key holds one number per retrieval direction (``map@50.i2t``, ``map@50.t2i``, ...). The file also records
``topk``, ``zero``, ``ties`` and ``norm`` next to the numbers.
"""
from __future__ import annotations

from .config import Param

SCHEMA = {
    "protocol": Param("paper", str, choices=("paper", "custom")),
    "topk": Param(None, int, ge=1, nullable=True),  # null = the whole database
    "zero": Param("count", str, choices=("count", "skip")),
    "radius": Param(2, int, ge=0),
    "map_all": Param(True, bool),  # also mAP over the whole ranking (a full sort per query; false at NUS scale)
}
ZERO_POLICIES = ("count", "skip")


def map_key(topk, zero: str) -> str:
    """The metric key of mAP@K under a zero policy: map@5000, map@5000_skip, map@all."""
    k = "all" if topk in (None, "all") else int(topk)
    return f"map@{k}" + ("_skip" if zero == "skip" else "")


def radius_key(radius: int) -> str:
    return f"precision@radius{int(radius)}"


def paper(method_preset: dict, dataset_preset_params: dict | None) -> dict:
    """The paper protocol of a run: the method's (its class `preset`), with K and the zero policy of the paper preset
    for this dataset where one exists (e.g. HyP²: mAP@1000 on MIRFlickr, @5000 on NUS-WIDE, @5011 / @5717 on VOC)."""
    out = dict(method_preset)
    for key in ("topk", "zero"):
        if dataset_preset_params and f"evaluate.{key}" in dataset_preset_params:
            value = dataset_preset_params[f"evaluate.{key}"]
            out[key] = "all" if value is None and key == "topk" else value
    return out


def resolve(params: dict, preset: dict) -> tuple:
    """(topk, zero, directions or None) of a run: the method's paper preset under `protocol: paper` (falling back
    to the block's own keys where the preset has none), else the block's topk/zero and every direction."""
    preset = preset if params["protocol"] == "paper" else {}
    topk = preset.get("topk", params["topk"])
    return (None if topk == "all" else topk), preset.get("zero", params["zero"]), preset.get("directions")
