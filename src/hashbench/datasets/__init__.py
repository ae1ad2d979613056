"""The datasets: one module per dataset (a DatasetSpec subclass: sources with checksums, params schema, converter,
split default, what to place by hand) and one registry line each. See base.py and the README's "Adding a dataset"."""
from __future__ import annotations

from ..download import DOWNLOAD_ROOT, MANUAL_ROOT
from ..errors import HashbenchError
from .base import DatasetSpec, Source, prepare
from .cifar10 import Cifar10
from .coco import Coco
from .cub200 import Cub200
from .imagenet100 import ImageNet100
from .mirflickr25k import Mirflickr25k
from .mirflickr25k_dcmh import Mirflickr25kDcmh
from .mnist5k import Mnist5k
from .mnist5k_tags import Mnist5kTags
from .nuswide import NusWide
from .nuswide_tc10 import NusWideTc10
from .stanford_dogs import StanfordDogs
from .voc2007 import Voc2007
from .voc2012 import Voc2012
from .wikipedia import Wikipedia

REGISTRY: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    Mnist5k(),
    Mnist5kTags(),
    Cifar10(),
    Mirflickr25k(),
    Cub200(),
    StanfordDogs(),
    Voc2007(),
    Voc2012(),
    NusWide(),
    Wikipedia(),
    Mirflickr25kDcmh(),
    NusWideTc10(),
    Coco(),
    ImageNet100(),
)}

__all__ = ["REGISTRY", "DatasetSpec", "Source", "check_dataset_name", "dataset_block", "datasets_with",
           "get_dataset", "prepare_dataset"]


def check_dataset_name(name) -> str:
    if name not in REGISTRY:
        raise HashbenchError(f"dataset: {name!r} is not allowed; use one of {', '.join(REGISTRY)}")
    return name


def get_dataset(name) -> DatasetSpec:
    return REGISTRY[check_dataset_name(name)]


def datasets_with(modality: str) -> list[str]:
    return sorted(name for name, spec in REGISTRY.items() if modality in spec.modalities)


def dataset_block(name: str, block: dict | None) -> dict:
    """The dataset's params block, validated, with its `split` protocol and `seed` filled in."""
    return get_dataset(name).validate(block)


def prepare_dataset(name: str, params: dict | None, folder, *, download_root=DOWNLOAD_ROOT, manual_root=MANUAL_ROOT,
                    progress: bool = True) -> dict:
    """The download stage: write dataset `name` into `folder` (embedded sets are generated, real sets fetched or
    taken from ``data/manual/<name>/`` and converted); return the manifest."""
    return prepare(get_dataset(name), params, folder, download_root=download_root, manual_root=manual_root,
                   progress=progress)
