"""``imagenet100``: the 100-class ImageNet subset of HashNet, as DeepHash-pytorch's ``imagenet`` lists define it
(queries: 5,000 ILSVRC 2012 validation images; train: 13,000 training images; database: the training images of the
100 classes). The lists are the definition, so they are required (``data/manual/imagenet100/lists/`` ``test.txt``,
``train.txt``, ``database.txt``, lines ``<path> <100 0/1 labels>``); the images come from the official
``ILSVRC2012_img_train.tar`` (a tar of one tar per class) and ``ILSVRC2012_img_val.tar``, of which only the listed
files are copied. Labels are the lists' rows (an image listed twice must carry the same row); a column is named by
the WordNet id its training images share (``n01558993_4522.JPEG`` -> ``n01558993``).
"""
from __future__ import annotations

import re
import tarfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import lists
from ..errors import HashbenchError
from .archives import copy_member, reading_tar, tar_files_by_basename
from .base import IMAGE_PARAMS, LIST_SPLIT, DatasetSpec, Source, one_line

TRAIN, VAL = "ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"
SITE = "https://image-net.org/data/ILSVRC/2012"
_WNID = re.compile(r"^(n\d{8})_\d+\.JPEG$")
MAX_IMAGE = 64 << 20


def items_from_lists(parts: dict[str, lists.ListPart], where: str) -> tuple[list[str], np.ndarray]:
    """(sorted distinct file names, their label rows) of all lists."""
    rows: dict[str, np.ndarray] = {}
    for lp in parts.values():
        for name, row, line_no in zip(lp.names, lp.labels, lp.lines):
            key = lists.base_name(name)
            if key in rows and not np.array_equal(rows[key], row):
                raise HashbenchError(f"{where}: {lp.source} line {line_no}: {key} carries another label row than in "
                                     f"an earlier list")
            rows[key] = row
    names = sorted(rows)
    return names, np.stack([rows[k] for k in names]) if names else np.zeros((0, 0), np.uint8)


def column_names(names: list[str], labels: np.ndarray, where: str) -> list[str]:
    """The WordNet id per label column, from the training images' file names."""
    out = []
    for j in range(labels.shape[1]):
        wnids = {m.group(1) for k in np.flatnonzero(labels[:, j]) if (m := _WNID.match(names[k]))}
        if len(wnids) > 1:
            raise HashbenchError(f"{where}: label column {j} holds training images of {len(wnids)} WordNet ids "
                                 f"({', '.join(sorted(wnids)[:3])}); the lists are not one class per column")
        out.append(wnids.pop() if wnids else f"class_{j}")
    return out


class ImageNet100(DatasetSpec):
    name = "imagenet100"
    title = "ImageNet-100 (HashNet's subset of ILSVRC 2012)"
    page = "https://image-net.org/download.php"
    license = "ImageNet: non-commercial research and educational use (terms of access)"
    modalities = frozenset({"image"})
    sources = (
        Source(TRAIN, f"{SITE}/{TRAIN}", "1d675b47d978889d74fa0da5fadfb00e", where="image-net.org, after login"),
        Source(VAL, f"{SITE}/{VAL}", "29b22e2961454d5413ddabcf34fc5622", where="image-net.org, after login"),
    )
    schema = IMAGE_PARAMS
    split_default = LIST_SPLIT
    database_list = "required"
    list_where = {"deephash": "swuxyj/DeepHash-pytorch data/imagenet/"}

    def check(self, p: dict) -> None:
        if p["split"]["protocol"] != "lists":
            raise HashbenchError(f"{self.name}.split.protocol: {p['split']['protocol']!r} is not allowed; use lists "
                                 f"(the published lists define the 100 classes and the items)")

    def convert(self, files: dict[str, Path], p: dict, folder: Path) -> dict:
        where = f"{self.name}.split"
        names, labels = items_from_lists(lists.read_parts(p["split"], files, where), where)
        classes = column_names(names, labels, where)
        by_class: dict[str, list[str]] = {}
        val = []
        for name in names:
            if m := _WNID.match(name):
                by_class.setdefault(m.group(1), []).append(name)
            else:
                val.append(name)
        paths = {name: f"train/{m.group(1)}/{name}" if (m := _WNID.match(name)) else f"val/{name}" for name in names}
        with reading_tar(files[TRAIN]) as tf:
            inner = tar_files_by_basename(tf)
            for wnid in tqdm(sorted(by_class), desc="ImageNet-100 train", unit="class", mininterval=1.0):
                if f"{wnid}.tar" not in inner:
                    raise HashbenchError(f"{files[TRAIN]}: {wnid}.tar not found; use the official {TRAIN}")
                try:
                    with tarfile.open(fileobj=tf.extractfile(inner[f"{wnid}.tar"]), mode="r:") as sub:
                        self._copy(sub, f"{TRAIN}:{wnid}.tar", by_class[wnid], paths, folder)
                except tarfile.TarError as err:
                    raise HashbenchError(f"{files[TRAIN]}: {wnid}.tar is not readable ({one_line(err)})") from None
        with reading_tar(files[VAL]) as tf:
            self._copy(tf, VAL, val, paths, folder)
        ordered = [paths[n] for n in names]
        return self.write(folder, p, files, labels=labels, class_names=classes, image_paths=ordered,
                          image_root="images", image_size=p["image_size"],
                          extra_manifest={"generator": {"items": len(names), "train_images": len(names) - len(val),
                                                        "val_images": len(val)}})

    @staticmethod
    def _copy(tf: tarfile.TarFile, label: str, wanted: list[str], paths: dict[str, str], folder: Path) -> None:
        members = tar_files_by_basename(tf)
        for name in wanted:
            if name not in members:
                raise HashbenchError(f"{label}: {name} not found; the lists name an image the archive lacks")
            copy_member(label, tf, members[name], folder / "images" / paths[name], MAX_IMAGE)
