"""``stanford-dogs``: 20,580 images of 120 breeds (single-label), extracted under ``<folder>/images``. The official
lists give the partition: the 8,580 test images are the query side (1), the 12,000 train images the database/train
side (0). Class c is the breed folder of label c + 1. The lists are MATLAB v5 files read with scipy.io.loadmat."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..download import extract
from ..errors import HashbenchError
from .archives import read_member, reading_tar, tar_files_by_basename
from .base import IMAGE_PARAMS, OFFICIAL_SPLIT, DatasetSpec, Source
from .matfiles import read_mat

BASE = "http://vision.stanford.edu/aditya86/ImageNetDogs"


def read_list(lists_tar: Path, member: str) -> tuple[list[str], np.ndarray]:
    """(file names, 1-based labels) of train_list.mat / test_list.mat inside lists.tar."""
    with reading_tar(lists_tar) as tf:
        found = tar_files_by_basename(tf)
        if member not in found:
            raise HashbenchError(f"{lists_tar}: {member} not found; use the official lists.tar")
        raw = read_member(lists_tar, tf, found[member], 64 << 20, member)
    mat = read_mat(raw, ("file_list", "labels"), f"{lists_tar}: {member}")
    files = [str(np.squeeze(x)) for x in mat["file_list"].ravel()]
    labels = np.asarray(mat["labels"]).ravel().astype(np.int64)
    if len(files) != len(labels):
        raise HashbenchError(f"{lists_tar}: {member} has {len(files)} files and {len(labels)} labels")
    return files, labels


class StanfordDogs(DatasetSpec):
    name = "stanford-dogs"
    title = "Stanford Dogs"
    page = f"{BASE}/"
    license = "Stanford Dogs: ImageNet terms (non-commercial research)"
    modalities = frozenset({"image"})
    sources = (
        Source("images.tar", f"{BASE}/images.tar", "1bb1f2a596ae7057f99d7d75860002ef", 793579520, where=BASE),
        Source("annotation.tar", f"{BASE}/annotation.tar", "4298cc0031f6bc6e74612ac83b5988e2", 21852160,
               optional=True, where=BASE),  # bounding boxes: unused by the triplet reference
        Source("lists.tar", f"{BASE}/lists.tar", "edbb9f16854ec66506b5f09b583e0656", 481280, where=BASE),
    )
    schema = IMAGE_PARAMS
    split_default = OFFICIAL_SPLIT

    def convert(self, files: dict[str, Path], p: dict, folder: Path) -> dict:
        lists_tar = files["lists.tar"]
        train_files, train_labels = read_list(lists_tar, "train_list.mat")
        test_files, test_labels = read_list(lists_tar, "test_list.mat")
        paths, labels1 = train_files + test_files, np.concatenate([train_labels, test_labels])
        n_classes = int(labels1.max()) if labels1.size else 0
        if labels1.size == 0 or labels1.min() < 1:
            raise HashbenchError(f"{lists_tar}: labels must be 1..{n_classes}; use the official lists.tar")
        names = {}
        for f, lab in zip(paths, labels1):
            names.setdefault(int(lab), f.split("/")[0])
        if len(names) != n_classes:
            raise HashbenchError(f"{lists_tar}: labels 1..{n_classes} but only {len(names)} of them have images")
        extract(files["images.tar"], folder / "images")
        image_dir = next((q for q in sorted((folder / "images").rglob("Images")) if q.is_dir()), None)
        if image_dir is None:
            raise HashbenchError(f"{files['images.tar']}: Images/ not found; use the official images.tar")
        return self.write(
            folder, p, files, labels=np.eye(n_classes, dtype=np.uint8)[labels1 - 1],
            class_names=[names[c] for c in range(1, n_classes + 1)], single_label=True, image_paths=paths,
            image_root=str(image_dir.relative_to(folder)), image_size=p["image_size"],
            partition=np.array([0] * len(train_files) + [1] * len(test_files), np.uint8),
            note="partition 1 = official test list")
