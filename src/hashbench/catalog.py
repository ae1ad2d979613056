"""Which datasets exist and which modalities each has: what compatibility checks and error messages consult."""
from __future__ import annotations

from .errors import HashbenchError

# name -> modalities. Embedded sets are generated offline; real sets come through the download stage.
DATASETS: dict[str, frozenset] = {
    "mnist5k": frozenset({"image"}),
    "mnist5k-tags": frozenset({"image", "tags", "text"}),
}


def datasets_with(modality: str) -> list[str]:
    return sorted(name for name, mods in DATASETS.items() if modality in mods)


def check_dataset_name(name) -> str:
    if name not in DATASETS:
        raise HashbenchError(f"dataset: {name!r} is not allowed; use one of {', '.join(DATASETS)}")
    return name
