"""``mirflickr25k``: MIRFLICKR-25K from its two official archives: images, the cleaned user tags of
``meta/tags/tags<N>.txt``, as text the bag of words over the 1,386 tags of ``doc/common_tags.txt`` (as DCMH's YAll),
and 38 labels (one column per ``<concept>.txt`` of the annotations, in sorted file-name order: 24 concepts and 14
``_r1`` subsets, DeepHash-pytorch's and HyP²'s columns).

``subset`` picks the items:

- ``labelled`` (default): the 24,581 images with at least one label (HyP²'s and most papers' setting). With all
  25,000, the 419 unlabeled images are never relevant, so each one drawn as a query scores 0.
- ``all``: the 25,000 images (DeepHash-pytorch's ``mirflickr`` lists include the 419 unlabeled ones).
- ``dcmh``: DCMH's selection, used by DJSRH: the 24 concept columns only (``_r1`` files ignored), and the images
  with at least one of those labels and at least one of the 1,386 common tags in their bag of words: 20,015 images.
  (DCMH's paper reads as "at least 20 tags"; the 1,386 common tags are those used by at least 20 images, and this
  rule is the one that gives DCMH's 20,015, as iTomxy/data's flickr25k notes report; not checked here on the real
  archive.)
"""
from __future__ import annotations

import posixpath
import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..config import Param
from ..errors import HashbenchError
from .archives import copy_member, reading_zip
from .base import IMAGE_PARAMS, DatasetSpec, Source
from .wsdhq_release import WsdhqLists

IMAGES, ANNOTATIONS = "mirflickr25k.zip", "mirflickr25k_annotations_v080.zip"
_IMAGE = re.compile(r"(?:^|/)im(\d+)\.jpg$")
_TAGS = re.compile(r"(?:^|/)meta/tags/tags(\d+)\.txt$")
_COMMON = re.compile(r"(?:^|/)doc/common_tags\.txt$")
MAX_IMAGE = 64 << 20


def read_annotations(annotations_zip, n_images: int) -> tuple[list[str], np.ndarray]:
    """The concept names and uint8 (n_images, C) labels of mirflickr25k_annotations_v080.zip: one column per
    ``<concept>.txt`` (1-based image ids), in sorted file-name order (each ``_r1`` subset right after its concept)."""
    zpath = Path(annotations_zip)
    with reading_zip(zpath) as zf:
        members = sorted((posixpath.basename(m), m) for m in zf.namelist()
                         if m.lower().endswith(".txt") and not posixpath.basename(m).lower().startswith("readme"))
        if not members:
            raise HashbenchError(f"{zpath}: no <concept>.txt files; use the official {ANNOTATIONS}")
        labels = np.zeros((n_images, len(members)), np.uint8)
        for j, (_name, member) in enumerate(members):
            for line_no, line in enumerate(zf.read(member).decode("utf-8", "replace").splitlines(), 1):
                token = line.strip()
                if not token:
                    continue
                if not token.isdigit() or not 1 <= int(token) <= n_images:
                    raise HashbenchError(f"{zpath.name}:{member} line {line_no}: {token!r} is not an image id; "
                                         f"ids are 1..{n_images}")
                labels[int(token) - 1, j] = 1
    return [fname[:-4] for fname, _ in members], labels


def select(subset: str, names: list[str], labels: np.ndarray, text: np.ndarray | None) -> tuple[np.ndarray, list]:
    """(kept image rows, kept label columns) for a subset (see the module doc)."""
    columns = list(range(len(names)))
    if subset == "dcmh":
        if text is None:
            raise HashbenchError(f"mirflickr25k.subset: dcmh needs doc/common_tags.txt in {IMAGES}; use the official "
                                 f"archive")
        columns = [j for j, name in enumerate(names) if not name.endswith("_r1")]
        keep = labels[:, columns].any(axis=1) & text.any(axis=1)
    elif subset == "labelled":
        keep = labels.any(axis=1)
    else:
        keep = np.ones(len(labels), bool)
    return np.flatnonzero(keep), columns


class Mirflickr25k(WsdhqLists, DatasetSpec):
    name = "mirflickr25k"
    title = "MIRFLICKR-25K"
    page = "https://press.liacs.nl/mirflickr/mirdownload.html"
    license = "MIRFLICKR-25K: Flickr images under Creative Commons licences (per-image, see meta/license)"
    modalities = frozenset({"image", "tags", "text"})
    sources = (
        Source(IMAGES, f"http://press.liacs.nl/mirflickr/mirflickr25k.v3b/{IMAGES}", "a23d0a8564ee84cda5622a6c2f947785",
               where="press.liacs.nl/mirflickr"),
        Source(ANNOTATIONS, f"http://press.liacs.nl/mirflickr/mirflickr25k.v3b/{ANNOTATIONS}",
               "aa0138c79892b1b670184d142380948f", where="press.liacs.nl/mirflickr"),  # md5 unverified (third-party)
    )
    schema = {**IMAGE_PARAMS, "subset": Param("labelled", str, choices=("labelled", "all", "dcmh"))}
    # seeded random 1,000 queries / 4,000 train / the rest as database (HyP²'s counts on the labelled subset)
    split_default = {"protocol": "random", "n_query": 1000, "n_train": 4000, "train_in_database": False}
    list_formats = ("deephash", "hyp2", "wsdhq")
    wsdhq_folder = "flickr25k"
    list_where = {"deephash": "swuxyj/DeepHash-pytorch data/mirflickr/",
                  "hyp2": "JerryXu0129/HyP2-Loss data/flickr25k/ and flickr.txt"}

    def convert(self, files: dict[str, Path], p: dict, folder: Path) -> dict:
        zpath, folder = files[IMAGES], Path(folder)
        with reading_zip(zpath) as zf:
            images, tag_files, common = {}, {}, None
            for m in zf.namelist():
                if (hit := _IMAGE.search(m)) is not None:
                    images[int(hit.group(1))] = m
                elif (hit := _TAGS.search(m)) is not None:
                    tag_files[int(hit.group(1))] = m
                elif _COMMON.search(m):
                    common = m
            n = len(images)
            if n == 0 or sorted(images) != list(range(1, n + 1)):
                missing = next((i for i in range(1, n + 1) if i not in images), None)
                raise HashbenchError(f"{zpath}: the images are not im1.jpg..im{n}.jpg (first missing: im{missing}.jpg);"
                                     f" use the official {IMAGES}")
            tags = [list(dict.fromkeys(zf.read(tag_files[i]).decode("utf-8", "replace").split()))
                    if i in tag_files else [] for i in range(1, n + 1)]
            vocab = None if common is None else [
                line.split()[0] for line in zf.read(common).decode("utf-8", "replace").splitlines() if line.strip()]
            names, labels = read_annotations(files[ANNOTATIONS], n)  # checked before anything is written
            text = None
            if vocab is not None:
                column = {w: j for j, w in enumerate(vocab)}
                text = np.zeros((n, len(vocab)), np.float32)
                for i, words in enumerate(tags):
                    text[i, [column[w] for w in words if w in column]] = 1.0
            keep, columns = select(p["subset"], names, labels, text)
            for i in tqdm(keep + 1, desc="MIRFLICKR-25K images", unit="img", mininterval=1.0):
                info = zf.getinfo(images[i])
                copy_member(zpath, zf, info, folder / "images" / f"im{i}.jpg", MAX_IMAGE)
        return self.write(
            folder, p, files, labels=labels[np.ix_(keep, columns)], class_names=[names[j] for j in columns],
            image_paths=[f"im{i}.jpg" for i in keep + 1], image_root="images", image_size=p["image_size"],
            tags=[tags[i] for i in keep], text=None if text is None else text[keep], text_vocab=vocab,
            extra_arrays={"source_ids": (keep + 1).astype(np.int64)},
            extra_manifest={"generator": {
                "subset": p["subset"], "n_images": n, "n_unlabelled": int((~labels.any(axis=1)).sum()),
                "n_kept": int(keep.size), "n_labels": len(columns),
                "text": "bag of words over doc/common_tags.txt" if vocab else None}})
