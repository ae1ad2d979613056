"""Which datasets exist, which modalities each has, and their params blocks (generator/converter + split)."""
from __future__ import annotations

from .errors import HashbenchError

# name -> modalities. Embedded sets are generated offline; real sets come through the download stage
# (fetched with checksums, or placed by hand under data/manual/<name>/).
DATASETS: dict[str, frozenset] = {
    "mnist5k": frozenset({"image"}),
    "mnist5k-tags": frozenset({"image", "tags", "text"}),
    "cifar10": frozenset({"image"}),
    "mirflickr25k": frozenset({"image", "tags", "text"}),
    "cub200": frozenset({"image"}),
    "stanford-dogs": frozenset({"image"}),
    "voc2007": frozenset({"image"}),
    "voc2012": frozenset({"image"}),
    "nuswide": frozenset({"image", "tags", "text"}),  # images and tags only when their archives are placed
}


def datasets_with(modality: str) -> list[str]:
    return sorted(name for name, mods in DATASETS.items() if modality in mods)


def check_dataset_name(name) -> str:
    if name not in DATASETS:
        raise HashbenchError(f"dataset: {name!r} is not allowed; use one of {', '.join(DATASETS)}")
    return name


def dataset_block(name: str, block: dict | None) -> dict:
    """The dataset's params block, validated, with its `split` protocol and `seed` filled in."""
    from . import download, embedded, splits
    from .config import validate

    check_dataset_name(name)
    if name in embedded.EMBEDDED:
        return embedded.validate_params(name, block)
    block = dict(block or {})
    split = splits.validate_protocol(block.pop("split", download.REAL_SPLIT_DEFAULTS[name]), where=f"{name}.split")
    return {**validate(name, block, download.REAL_SCHEMAS[name]), "split": split}
