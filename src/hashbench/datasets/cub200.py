"""``cub200``: CUB-200-2011, 11,788 images of 200 bird species (single-label), extracted under ``<folder>/images``.
The official split gives the partition: the 5,794 test images are the query side (1), the 5,994 train images the
database/train side (0), as the triplet-hashing reference uses them."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..download import extract
from ..errors import HashbenchError
from .base import IMAGE_PARAMS, OFFICIAL_SPLIT, DatasetSpec, Source

ARCHIVE = "CUB_200_2011.tgz"


def _id_table(path: Path, what: str) -> dict[int, str]:
    """`<int id> <value>` per line (CUB's metadata files) -> {id: value}; one-line error on a malformed line."""
    if not path.is_file():
        raise HashbenchError(f"{path}: not found; the {ARCHIVE} archive is incomplete")
    out = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        head, _, value = line.strip().partition(" ")
        if not head.isdigit() or not value:
            raise HashbenchError(f"{path.name} line {line_no}: {line.strip()!r} is not '<id> <{what}>'")
        out[int(head)] = value.strip()
    return out


class Cub200(DatasetSpec):
    name = "cub200"
    title = "CUB-200-2011"
    page = "https://www.vision.caltech.edu/datasets/cub_200_2011/"
    license = "CUB-200-2011: research use (images from Flickr)"
    modalities = frozenset({"image"})
    sources = (Source(ARCHIVE, f"https://data.caltech.edu/records/65de6-vp158/files/{ARCHIVE}",
                      "97eceeb196236b17998738112f37df78", 1150585339, where="data.caltech.edu"),)
    schema = IMAGE_PARAMS
    split_default = OFFICIAL_SPLIT

    def convert(self, files: dict[str, Path], p: dict, folder: Path) -> dict:
        archive = files[ARCHIVE]
        extract(archive, folder / "images")
        meta = next((q.parent for q in sorted((folder / "images").rglob("images.txt"))), None)
        if meta is None:
            raise HashbenchError(f"{archive}: images.txt not found; use the official {ARCHIVE}")
        paths = _id_table(meta / "images.txt", "path")
        classes = _id_table(meta / "classes.txt", "name")
        label_of = _id_table(meta / "image_class_labels.txt", "class id")
        is_train = _id_table(meta / "train_test_split.txt", "0 or 1")
        ids = sorted(paths)
        if set(label_of) != set(ids) or set(is_train) != set(ids):
            raise HashbenchError(f"{archive}: images.txt, image_class_labels.txt and train_test_split.txt list "
                                 f"different image ids; the archive is corrupt")
        class_ids = sorted(classes)
        column = {c: j for j, c in enumerate(class_ids)}
        bad = next((i for i in ids if not label_of[i].isdigit() or int(label_of[i]) not in column), None)
        if bad is not None:
            raise HashbenchError(f"image_class_labels.txt: image {bad} has class {label_of[bad]!r}; classes.txt has "
                                 f"ids {class_ids[0]}..{class_ids[-1]}")
        labels = np.zeros((len(ids), len(class_ids)), np.uint8)
        labels[np.arange(len(ids)), [column[int(label_of[i])] for i in ids]] = 1
        return self.write(
            folder, p, files, labels=labels, class_names=[classes[c] for c in class_ids], single_label=True,
            image_paths=[paths[i] for i in ids], image_root=str((meta / "images").relative_to(folder)),
            image_size=p["image_size"], partition=np.array([0 if is_train[i] == "1" else 1 for i in ids], np.uint8),
            extra_arrays={"source_ids": np.array(ids, np.int64)}, note="partition 1 = official test images")
