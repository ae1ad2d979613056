"""``coco``: MS-COCO 2014 as multi-label retrieval, the benchmark of HashNet and DeepHash-pytorch: train2014 +
val2014 images with at least one object category (HashNet reports 122,218; not checked here), 80 labels (one per
category of ``instances_*2014.json``, in category-id order), images copied from the two zips.

Split: DeepHash-pytorch's ``coco`` lists (``split.protocol: lists``, the default), placed by hand in
``data/manual/coco/lists/`` (``test.txt`` 5,000 queries, ``train.txt`` 10,000, ``database.txt``), matched by file
name; their label rows must equal the converted ones (the category-id column order is an assumption the check
confirms on the user's data).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import HashbenchError
from .archives import copy_member, read_member, reading_zip, zip_files_by_basename
from .base import IMAGE_PARAMS, LIST_SPLIT, DatasetSpec, Source

SITE = "http://images.cocodataset.org"
ANNOTATIONS = "annotations_trainval2014.zip"
SPLITS = ("train2014", "val2014")
MAX_JSON, MAX_IMAGE = 1 << 30, 64 << 20


def read_instances(raw: bytes, where: str) -> tuple[list[tuple[int, str]], dict[int, set[int]], dict[int, str]]:
    """(images [(id, file name)], categories per image id, category names by id) of an instances JSON."""
    try:
        data = json.loads(raw)
        images = [(int(im["id"]), str(im["file_name"])) for im in data["images"]]
        cats = {int(c["id"]): str(c["name"]) for c in data["categories"]}
        per_image: dict[int, set[int]] = {}
        for ann in data["annotations"]:
            per_image.setdefault(int(ann["image_id"]), set()).add(int(ann["category_id"]))
    except (ValueError, KeyError, TypeError) as err:
        raise HashbenchError(f"{where}: not a COCO instances file ({type(err).__name__}: {err})") from None
    return images, per_image, cats


class Coco(DatasetSpec):
    name = "coco"
    title = "MS-COCO 2014"
    page = "https://cocodataset.org/#download"
    license = "MS-COCO: annotations CC BY 4.0; images under their Flickr licences"
    modalities = frozenset({"image"})
    sources = (
        Source("train2014.zip", f"{SITE}/zips/train2014.zip", "0da8c0bd3d6becc4dcb32757491aca88", where=SITE),
        Source("val2014.zip", f"{SITE}/zips/val2014.zip", "a3d79f5ed8d289b7a7554ce06a5782b3", where=SITE),
        Source(ANNOTATIONS, f"{SITE}/annotations/{ANNOTATIONS}", max_bytes=1 << 30, where=SITE),
    )
    schema = IMAGE_PARAMS
    split_default = LIST_SPLIT  # DeepHash-pytorch's coco lists: 5,000 queries / 10,000 train / database
    database_list = "required"
    list_where = {"deephash": "swuxyj/DeepHash-pytorch data/coco/"}

    def convert(self, files: dict[str, Path], p: dict, folder: Path) -> dict:
        per_split, names = {}, {}
        with reading_zip(files[ANNOTATIONS]) as zf:
            members = zip_files_by_basename(zf)
            for split in SPLITS:
                fname = f"instances_{split}.json"
                if fname not in members:
                    raise HashbenchError(f"{files[ANNOTATIONS]}: {fname} not found; use the official {ANNOTATIONS}")
                raw = read_member(files[ANNOTATIONS], zf, members[fname], MAX_JSON, fname)
                images, per_image, cats = read_instances(raw, fname)
                per_split[split] = (images, per_image)
                names.update(cats)
        cat_ids = sorted(names)
        column = {c: j for j, c in enumerate(cat_ids)}
        rows, paths = [], []
        for split in SPLITS:
            images, per_image = per_split[split]
            for image_id, file_name in sorted(images):
                cats = per_image.get(image_id, set())
                unknown = cats - set(column)
                if unknown:
                    raise HashbenchError(f"instances_{split}.json: image {image_id} has category {min(unknown)}, "
                                         f"which the categories list lacks")
                if cats:
                    rows.append([column[c] for c in cats])
                    paths.append(f"{split}/{file_name}")
        labels = np.zeros((len(rows), len(cat_ids)), np.uint8)
        for i, cols in enumerate(rows):
            labels[i, cols] = 1
        for split in SPLITS:
            zpath = files[f"{split}.zip"]
            with reading_zip(zpath) as zf:
                members = zip_files_by_basename(zf)
                wanted = [q for q in paths if q.startswith(f"{split}/")]
                for rel in tqdm(wanted, desc=f"COCO {split}", unit="img", mininterval=1.0):
                    member = members.get(rel.split("/", 1)[1])
                    if member is None:
                        raise HashbenchError(f"{zpath}: {rel} not found; use the official {zpath.name}")
                    copy_member(zpath, zf, member, folder / "images" / rel, MAX_IMAGE)
        return self.write(folder, p, files, labels=labels, class_names=[names[c] for c in cat_ids],
                          image_paths=paths, image_root="images", image_size=p["image_size"],
                          extra_manifest={"generator": {"items": len(paths), "categories": len(cat_ids),
                                                        "kept": "images with at least one object category"}})
