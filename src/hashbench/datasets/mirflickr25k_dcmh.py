"""``mirflickr25k-dcmh``: DCMH's MIRFlickr-25K release, the data DJSRH's tables use: ``mirflickr25k-lall.mat``
(``LAll``, 20,015 x 24 labels), ``mirflickr25k-yall.mat`` (``YAll``, the 1,386-d tag bag of words) and
``mirflickr25k-iall.mat`` (``IAll``, 224 x 224 RGB images; DCMH's single-file release calls it ``images``), as
DJSRH's datasets.py reads them. v7.3 files are read with h5py (the images in blocks of rows), older ones with
scipy.io.loadmat. No checksum is published: the md5 of each placed file is recorded in the manifest.

Split (``djsrh``): DJSRH's per-label recipe, 2,000 queries and 5,000 training pairs, database = the other pairs.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..config import Param
from ..errors import HashbenchError
from .base import DatasetSpec, Source
from .matfiles import MatImages, read_mat

WHERE = "DCMH's release (jiangqy/DCMH-CVPR2017 README) or DJSRH's (zzs1994/DJSRH README)"
CONCEPTS24 = ["animals", "baby", "bird", "car", "clouds", "dog", "female", "flower", "food", "indoor", "lake", "male",
              "night", "people", "plant_life", "portrait", "river", "sea", "sky", "structures", "sunset", "transport",
              "tree", "water"]


class Mirflickr25kDcmh(DatasetSpec):
    name = "mirflickr25k-dcmh"
    title = "MIRFlickr-25K, DCMH's .mat release"
    page = "https://github.com/jiangqy/DCMH-CVPR2017"
    license = "MIRFLICKR-25K images under Creative Commons licences; DCMH's processed release"
    modalities = frozenset({"image", "text"})
    prefix: ClassVar[str] = "mirflickr25k"
    expected: ClassVar[tuple[int, int, int]] = (20015, 24, 1386)  # items, labels, text dimensions
    sources = tuple(Source(f"mirflickr25k-{v}.mat", max_bytes=(8 << 30) if v == "iall" else (2 << 30), where=WHERE)
                    for v in ("lall", "yall", "iall"))
    schema = {"seed": Param(0, int, ge=0)}
    split_default = {"protocol": "djsrh", "query_per_class": 80, "train_per_class": 200, "first_class_factor": 2,
                     "n_train": 5000}
    list_formats = ()  # items carry no file names

    def class_names(self, labels: np.ndarray) -> tuple[list[str], str]:
        if labels.shape[1] == len(CONCEPTS24):
            return CONCEPTS24, "the 24 concepts in alphabetical order (DCMH's column order, per iTomxy/data)"
        return [f"label_{j}" for j in range(labels.shape[1])], "unnamed columns"

    def convert(self, files: dict[str, Path], p: dict, folder: Path) -> dict:
        lall, yall, iall = (files[f"{self.prefix}-{v}.mat"] for v in ("lall", "yall", "iall"))
        labels = read_mat(lall, ["LAll"], lall.name)["LAll"]
        text = read_mat(yall, ["YAll"], yall.name)["YAll"]
        if labels.ndim != 2 or not np.isin(labels, (0, 1)).all():
            raise HashbenchError(f"{lall.name}: LAll must be an N x C matrix of 0/1, got {labels.dtype} {labels.shape}")
        if text.ndim != 2 or text.shape[0] != labels.shape[0]:
            raise HashbenchError(f"{yall.name}: YAll has shape {text.shape}; expected {labels.shape[0]} rows (LAll)")
        images = MatImages(iall, ("IAll", "images"), iall.name)
        try:
            if len(images) != labels.shape[0]:
                raise HashbenchError(f"{iall.name}: {len(images)} images for the {labels.shape[0]} rows of LAll")
            found = (labels.shape[0], labels.shape[1], text.shape[1])
            note = "" if found == self.expected else f"counts {found} differ from DCMH's {self.expected}"
            if note:
                warnings.warn(f"{self.name}: {note}", stacklevel=2)
            names, naming = self.class_names(labels)
            return self.write(folder, p, files, labels=labels.astype(np.uint8), class_names=names, images=images,
                              text=text.astype(np.float32),
                              extra_manifest={"generator": {"items": found[0], "labels": found[1],
                                                            "text_dims": found[2], "class_names": naming,
                                                            "note": note or "counts as published"}})
        finally:
            images.close()
