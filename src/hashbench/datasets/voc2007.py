"""``voc2007``: PASCAL VOC 2007 classification as multi-label retrieval, as HyP² uses it: 20-d multi-hot labels over
every ``<object><name>`` of an image's annotation, difficult objects included (``difficult: false`` counts only the
objects not marked difficult, the ``<class>_<set>.txt`` positives DeepHash-pytorch's VOC lists use). Test (4,952) =
query side, trainval (5,011) = database/train side."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..config import Param
from ..download import extract
from ..errors import HashbenchError
from .base import IMAGE_PARAMS, OFFICIAL_SPLIT, DatasetSpec, Source, one_line

CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
           "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]
HOST = "http://host.robots.ox.ac.uk/pascal/VOC"


class Voc2007(DatasetSpec):
    name = "voc2007"
    title = "PASCAL VOC 2007"
    page = f"{HOST}/voc2007/"
    license = "PASCAL VOC 2007: Flickr images, see the VOC terms"
    modalities = frozenset({"image"})
    sources = (
        Source("VOCtrainval_06-Nov-2007.tar", f"{HOST}/voc2007/VOCtrainval_06-Nov-2007.tar",
               "c52e279531787c972589f7e41ab4ae64", 460032000, where=HOST),
        Source("VOCtest_06-Nov-2007.tar", f"{HOST}/voc2007/VOCtest_06-Nov-2007.tar",
               "b6e924de25625d8de591ea690078ad9f", 451020800, where=HOST),
    )
    schema = {**IMAGE_PARAMS, "difficult": Param(True, bool)}
    split_default = OFFICIAL_SPLIT
    sides = ("trainval", "test")  # (database/train side, query side)

    def convert(self, files: dict[str, Path], p: dict, folder: Path) -> dict:
        archives = [files[s.name] for s in self.sources]
        for archive in archives:
            extract(archive, folder / "images")
        year = self.name[-4:]
        root = next((q for q in sorted((folder / "images").rglob(f"VOC{year}")) if q.is_dir()), None)
        if root is None:
            raise HashbenchError(f"{archives[0]}: VOCdevkit/VOC{year} not found; use the official VOC {year} tar "
                                 f"files")
        ids, partition = [], []
        for side, value in zip(self.sides, (0, 1)):
            listing = root / "ImageSets" / "Main" / f"{side}.txt"
            if not listing.is_file():
                raise HashbenchError(f"{listing}: not found; the VOC {year} archives are incomplete")
            names = [ln.strip() for ln in listing.read_text().splitlines() if ln.strip()]
            ids += names
            partition += [value] * len(names)
        column = {c: j for j, c in enumerate(CLASSES)}
        labels = np.zeros((len(ids), len(CLASSES)), np.uint8)
        for i, image_id in enumerate(tqdm(ids, desc=f"VOC{year} annotations", unit="file", mininterval=1.0)):
            xml_path = root / "Annotations" / f"{image_id}.xml"
            try:
                objects = [(o.findtext("name", "").strip(), o.findtext("difficult", "0").strip())
                           for o in ET.parse(xml_path).getroot().iter("object")]
            except (OSError, ET.ParseError) as err:
                raise HashbenchError(f"{xml_path}: unreadable annotation ({one_line(err)})") from None
            unknown = [o for o, _ in objects if o not in column]
            if unknown:
                raise HashbenchError(f"{xml_path}: object {unknown[0]!r} is not a VOC class; use one of "
                                     f"{', '.join(CLASSES)}")
            labels[i, [column[o] for o, hard in objects if p["difficult"] or hard != "1"]] = 1
        return self.write(
            folder, p, files, labels=labels, class_names=CLASSES, image_paths=[f"{i}.jpg" for i in ids],
            image_root=str((root / "JPEGImages").relative_to(folder)), image_size=p["image_size"],
            partition=np.array(partition, np.uint8),
            note=f"partition 1 = {self.sides[1]}, 0 = {self.sides[0]}; difficult objects "
                 f"{'included' if p['difficult'] else 'left out'}")
