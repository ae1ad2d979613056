"""``nuswide``: NUS-WIDE labels from the official ``Groundtruth.zip`` + ``ConceptsList.zip``: the ``subset``'s concepts
(most frequent first, DeepHash-pytorch's ``nuswide_21`` column order) and the items with at least one of them
(top21: 195,834; tc10: 186,577; all81: 209,347). Image paths come from ``ImageList.zip`` when placed (the images
themselves only by agreement with NUS; ``image_root`` names their folder); user tags and, as text, the 1,000-tag bag
of words (``AllTags1k.txt``, as DCMH) from ``NUS_WID_Tags.zip`` when placed.
"""
from __future__ import annotations

import posixpath
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..config import Param
from ..errors import HashbenchError
from .archives import reading_zip
from .base import IMAGE_PARAMS, DatasetSpec, Source
from .wsdhq_release import WsdhqLists

BASE = "https://lms.comp.nus.edu.sg/wp-content/uploads/2019/research/nuswide"
SUBSETS = {"all81": 81, "top21": 21, "tc10": 10}


def _parse_label_file(raw: bytes, where: str) -> np.ndarray:
    """0/1 per line; other values are reported (one warning line counting them) and treated as 0."""
    arr = np.frombuffer(raw, dtype=np.uint8)
    if arr.size % 2 == 0 and arr.size and np.all(arr[1::2] == 10) and np.all((arr[0::2] == 48) | (arr[0::2] == 49)):
        return (arr[0::2] - 48).astype(np.uint8)  # fast path: "0\n" / "1\n" only
    tokens = raw.split()
    values = np.empty(len(tokens), dtype=np.int64)
    bad: list[tuple[int, bytes]] = []
    for i, tok in enumerate(tokens):
        try:
            values[i] = int(tok)
        except ValueError:
            values[i] = -1
        if values[i] not in (0, 1):
            bad.append((i + 1, tok))
            values[i] = 0
    if bad:
        first = ", ".join(f"{t.decode('ascii', 'replace')} at line {ln}" for ln, t in bad[:3])
        warnings.warn(f"{where}: {len(bad)} bad label value(s) treated as 0 ({first})", stacklevel=3)
    return values.astype(np.uint8)


def read_concepts(concepts_zip) -> list[str]:
    """The 81 concept names from ConceptsList.zip (Concepts81.txt, alphabetical)."""
    with reading_zip(concepts_zip) as zf:
        name = next((n for n in zf.namelist() if n.endswith("Concepts81.txt")), None)
        if name is None:
            raise HashbenchError(f"{concepts_zip}: Concepts81.txt not found; use the official ConceptsList.zip")
        text = zf.read(name).decode("utf-8", "replace")
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_groundtruth(groundtruth_zip, concepts: list[str], part: str = "all") -> np.ndarray:
    """uint8 (n, len(concepts)) 0/1 labels from Groundtruth.zip: part "all" (AllLabels, 269,648 rows in
    Imagelist.txt order), "train" or "test" (TrainTestLabels). Bad values (e.g. -1130179 at line 78,373 of
    Labels_lake_Train.txt) are reported with a warning and treated as 0."""
    suffix = {"all": "", "train": "_Train", "test": "_Test"}
    if part not in suffix:
        raise HashbenchError(f"part: {part!r} is not allowed; use all, train or test")
    folder = "AllLabels" if part == "all" else "TrainTestLabels"
    zpath = Path(groundtruth_zip)
    with reading_zip(zpath) as zf:
        index = {n.split("/", 1)[-1] if n.count("/") > 1 else n: n for n in zf.namelist()}
        columns = []
        for concept in tqdm(concepts, desc=f"NUS-WIDE {folder}", leave=False):
            key = f"{folder}/Labels_{concept}{suffix[part]}.txt"
            if key not in index:
                raise HashbenchError(f"{zpath}: {key} not found; use the official Groundtruth.zip")
            columns.append(_parse_label_file(zf.read(index[key]), f"{zpath.name}:{key}"))
    lengths = {c.size for c in columns}
    if len(lengths) != 1:
        raise HashbenchError(f"{zpath}: {folder} files have different lengths {sorted(lengths)}; the zip is corrupt")
    return np.stack(columns, axis=1)


def read_tags(tags_zip, n_rows: int) -> tuple[list[list[str]], list[str], np.ndarray]:
    """From NUS_WID_Tags.zip: the user tags per image (All_Tags.txt: image id, then its tags), the 1,000-tag vocab
    (TagList1k.txt) and its uint8 (n_rows, 1,000) 0/1 matrix (AllTags1k.txt, the bag of words DCMH and DJSRH use),
    all in Imagelist.txt order."""
    zpath = Path(tags_zip)
    with reading_zip(zpath) as zf:
        found = {posixpath.basename(m): m for m in zf.namelist()}
        missing = [f for f in ("All_Tags.txt", "TagList1k.txt", "AllTags1k.txt") if f not in found]
        if missing:
            raise HashbenchError(f"{zpath}: {', '.join(missing)} not found; use the official NUS_WID_Tags.zip")
        lines = zf.read(found["All_Tags.txt"]).decode("utf-8", "replace").splitlines()
        vocab = zf.read(found["TagList1k.txt"]).decode("utf-8", "replace").split()
        raw = np.frombuffer(zf.read(found["AllTags1k.txt"]), np.uint8)
    lines = [ln for ln in lines if ln.strip()]
    if len(lines) != n_rows:
        raise HashbenchError(f"{zpath}: All_Tags.txt has {len(lines)} lines for {n_rows} label rows")
    tags = [list(dict.fromkeys(ln.split()[1:])) for ln in lines]
    digits = raw[(raw == 48) | (raw == 49)] - 48          # the 0/1 values, whatever separates them
    if digits.size != n_rows * len(vocab):
        raise HashbenchError(f"{zpath}: AllTags1k.txt has {digits.size} 0/1 values; expected {n_rows} rows x "
                             f"{len(vocab)} tags of TagList1k.txt")
    return tags, vocab, digits.reshape(n_rows, len(vocab))


def read_image_list(image_list_zip, n_rows: int) -> list[str]:
    """Imagelist.txt's paths (``Flickr/<concept>/<file>.jpg``), in label-row order."""
    with reading_zip(image_list_zip) as zf:
        name = next((n for n in zf.namelist() if n.endswith("Imagelist.txt")), None)
        if name is None:
            raise HashbenchError(f"{image_list_zip}: Imagelist.txt not found; use the official ImageList.zip")
        text = zf.read(name).decode("utf-8", "replace")
    lines = [ln.strip().replace("\\", "/") for ln in text.splitlines() if ln.strip()]
    if len(lines) != n_rows:
        raise HashbenchError(f"{image_list_zip}: {len(lines)} paths for {n_rows} label rows")
    return lines


class NusWide(WsdhqLists, DatasetSpec):
    name = "nuswide"
    title = "NUS-WIDE"
    page = f"{BASE}/NUS-WIDE.html"
    license = "NUS-WIDE: research use; images only through the owners' agreement"
    modalities = frozenset({"image", "tags", "text"})  # images and tags only when their archives are placed
    sources = (
        Source("Groundtruth.zip", f"{BASE}/Groundtruth.zip", "a95fb76f7c8300e92ece0a90dd0ced4d", 1129480,
               where="the NUS-WIDE page"),
        Source("ConceptsList.zip", f"{BASE}/ConceptsList.zip", "5b877de6bfb0f7ba558f90d77b860348", 448,
               where="the NUS-WIDE page"),
        Source("ImageList.zip", f"{BASE}/ImageList.zip", optional=True, max_bytes=256 << 20, where="the NUS-WIDE page"),
        Source("NUS_WID_Tags.zip", f"{BASE}/NUS_WID_Tags.zip", optional=True, max_bytes=1 << 30,
               where="the NUS-WIDE page"),
    )
    schema = {**IMAGE_PARAMS, "subset": Param("top21", str, choices=tuple(SUBSETS)),
              "image_root": Param(None, str, nullable=True)}
    # DeepHash-pytorch `nuswide_21`: greedy 100 / 500 per concept, database = all - query (train inside)
    split_default = {"protocol": "quota", "query_per_class": 100, "train_per_class": 500, "train_in_database": True}
    list_formats = ("deephash", "wsdhq")
    wsdhq_folder = "nus-wide"
    list_where = {"deephash": "swuxyj/DeepHash-pytorch data/nuswide_21/ (or JerryXu0129/HyP2-Loss data/nus_wide/)"}
    check_train_test = True  # the official train/test files must add up to AllLabels (reports bad values)

    def needed(self, p: dict, manual_dir: Path) -> list[Source]:
        wanted = super().needed(p, manual_dir)
        if p["split"]["protocol"] == "lists" and all(s.name != "ImageList.zip" for s in wanted):
            wanted.append(next(s for s in self.sources if s.name == "ImageList.zip"))  # lists match file names
        return wanted

    def convert(self, files: dict[str, Path], p: dict, folder: Path) -> dict:
        concepts = read_concepts(files["ConceptsList.zip"])
        allm = read_groundtruth(files["Groundtruth.zip"], concepts, "all")
        counts = allm.sum(axis=0)
        order = np.argsort(-counts, kind="stable")[: SUBSETS[p["subset"]]]
        notes = []
        if self.check_train_test:
            tt = read_groundtruth(files["Groundtruth.zip"], concepts, "train").sum(axis=0) + \
                read_groundtruth(files["Groundtruth.zip"], concepts, "test").sum(axis=0)
            diff = [concepts[j] for j in np.flatnonzero(tt != counts)]
            if diff:
                warnings.warn(f"Groundtruth.zip: train+test counts differ from AllLabels for {len(diff)} concept(s): "
                              f"{', '.join(diff[:5])}", stacklevel=2)
            notes.append(f"train+test vs AllLabels count mismatches: {diff}")
        labels = allm[:, order]
        keep = np.flatnonzero(labels.any(axis=1))
        paths = None
        if "ImageList.zip" in files:
            paths = [read_image_list(files["ImageList.zip"], allm.shape[0])[i] for i in keep]
        tags = text = vocab = None
        if "NUS_WID_Tags.zip" in files:
            all_tags, vocab, bag = read_tags(files["NUS_WID_Tags.zip"], allm.shape[0])
            tags, text = [all_tags[i] for i in keep], bag[keep].astype(np.float32)
        return self.write(
            folder, p, files, labels=labels[keep], class_names=[concepts[j] for j in order], image_paths=paths,
            image_root=(p["image_root"] or "images") if paths is not None else None, image_size=p["image_size"],
            tags=tags, text=text, text_vocab=vocab, extra_arrays={"source_index": keep.astype(np.int64)},
            extra_manifest={"generator": {"subset": p["subset"], "notes": notes}})
