"""WSDHQ's own release: the ``data.tar.gz`` that gimpong/AAAI21-WSDHQ commits (git blob
fc5f84d8ff53b48edf9316ba95941a25e502dc33), with the authors' Flickr-25K and NUS-WIDE splits and processed tags.

Per dataset folder (``data/flickr25k/`` or ``data/nus-wide/``), as the official code reads them: ``test_img.txt`` +
``test_label.txt`` (queries), ``database_img.txt`` + ``database_label.txt``, ``train_img.txt`` + ``train_tag.txt``
(one 0/1 row of raw tags per training image), ``tags/TagIdMergeMap.pkl`` (a dict: merged-tag id -> the raw tag
columns it merges; key -1, if present, is dropped as the official loader does) and ``tags/FinalTagEmbs.txt`` (one
embedding per merged tag, in the dict's order); ``common_tags.txt`` / ``TagList1k.txt`` name the raw columns.
Image paths are matched to the converted items by file name (``split.format: wsdhq``); the tag files are stored in
``data/raw`` for ``tags.source: official``. The archive could not be fetched here, so this reader follows the
official code's use of the files (np.loadtxt matrices, the pickle's dict) and is tested on a miniature archive.

The merge map is a pickle. It is read only by an unpickler whose ``find_class`` refuses every global, so nothing in
it can name a function or class; anything but a dict of ints to lists of ints is refused in one line.
"""
from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from .. import lists
from ..errors import HashbenchError
from .archives import read_member, reading_tar
from .base import Source

RELEASE = Source("data.tar.gz", "https://github.com/gimpong/AAAI21-WSDHQ/raw/main/data.tar.gz",
                 git_blob="fc5f84d8ff53b48edf9316ba95941a25e502dc33", max_bytes=100 << 20,
                 where="committed in github.com/gimpong/AAAI21-WSDHQ")
PART_FILES = {"query": ("test_img.txt", "test_label.txt"), "database": ("database_img.txt", "database_label.txt"),
              "train": ("train_img.txt", None)}
MAX_MEMBER = 256 << 20
MAX_PICKLE = 16 << 20


class _NoGlobals(pickle.Unpickler):
    """Resolves no global at all: a pickle that names any function or class is refused."""

    def find_class(self, module, name):
        raise HashbenchError(f"refusing a pickle that refers to {module}.{name}; only a dict of ints to lists of "
                             f"ints is read")

    def persistent_load(self, pid):
        raise HashbenchError("refusing a pickle with persistent references; only a dict of ints to lists of ints is "
                             "read")


def read_merge_map(raw: bytes, where: str = "TagIdMergeMap.pkl") -> list[list[int]]:
    """The merged tags' raw-column lists, in the dict's order (key -1 dropped). One line for anything else."""
    try:
        obj = _NoGlobals(io.BytesIO(raw)).load()
    except HashbenchError as err:
        raise HashbenchError(f"{where}: {err}") from None
    except Exception as err:  # noqa: BLE001 - a corrupt pickle raises many kinds
        raise HashbenchError(f"{where}: not a readable pickle ({type(err).__name__})") from None
    ok = isinstance(obj, dict) and all(
        type(k) is int and isinstance(v, list) and all(type(x) is int for x in v) for k, v in obj.items())
    if not ok:
        raise HashbenchError(f"{where}: holds a {type(obj).__name__}, not a dict of ints to lists of ints; refusing it")
    return [list(v) for k, v in obj.items() if k != -1]


@dataclass
class Release:
    parts: dict[str, lists.ListPart]
    train_tags: np.ndarray  # uint8 (N_train, T_raw), train_img.txt order
    merged: list[list[int]]
    embeddings: np.ndarray  # float32 (T, D)
    vocab: list[str] | None


def _matrix(raw: bytes, what: str, where: str, dtype=np.float32) -> np.ndarray:
    try:
        values = np.loadtxt(io.BytesIO(raw), dtype=dtype, ndmin=2)
    except ValueError as err:
        raise HashbenchError(f"{where}: {what} is not a numeric matrix ({str(err).splitlines()[0]})") from None
    return values


def read_release(archive: Path, folder: str, where: str) -> Release:
    """The lists and tag files of ``<folder>/`` inside WSDHQ's data.tar.gz (nothing is extracted)."""
    with reading_tar(archive) as tf:
        found = {}
        for m in tf.getmembers():
            parts = m.name.replace("\\", "/").split("/")
            if m.isfile() and folder in parts[:-1]:
                found["/".join(parts[parts.index(folder) + 1:])] = m

        def member(name: str, cap: int = MAX_MEMBER, required: bool = True) -> bytes | None:
            if name not in found:
                if required:
                    raise HashbenchError(f"{where}: {archive.name} has no {folder}/{name}; use WSDHQ's data.tar.gz")
                return None
            return read_member(archive, tf, found[name], cap, f"{folder}/{name}")

        parts = {}
        for part, (img_file, label_file) in PART_FILES.items():
            names = [ln.strip() for ln in member(img_file).decode("utf-8", "replace").splitlines() if ln.strip()]
            labels = None
            if label_file is not None:
                labels = _matrix(member(label_file), label_file, where)
                if len(labels) != len(names) or not np.isin(labels, (0, 1)).all():
                    raise HashbenchError(f"{where}: {label_file} must hold one 0/1 row per line of {img_file} "
                                         f"({len(labels)} rows for {len(names)} images)")
                labels = labels.astype(np.uint8)
            parts[part] = lists.ListPart(img_file, names, list(range(1, len(names) + 1)), labels, same_columns=False)
        train_tags = _matrix(member("train_tag.txt"), "train_tag.txt", where)
        if len(train_tags) != len(parts["train"].names) or not np.isin(train_tags, (0, 1)).all():
            raise HashbenchError(f"{where}: train_tag.txt must hold one 0/1 row per line of train_img.txt "
                                 f"({len(train_tags)} rows for {len(parts['train'].names)} images)")
        merged = read_merge_map(member("tags/TagIdMergeMap.pkl", MAX_PICKLE),
                                f"{where}: {folder}/tags/TagIdMergeMap.pkl")
        embeddings = _matrix(member("tags/FinalTagEmbs.txt"), "tags/FinalTagEmbs.txt", where)
        vocab_raw = member("common_tags.txt", required=False) or member("TagList1k.txt", required=False)
    n_raw = train_tags.shape[1]
    if len(embeddings) != len(merged):
        raise HashbenchError(f"{where}: FinalTagEmbs.txt has {len(embeddings)} rows for the {len(merged)} merged tags "
                             f"of TagIdMergeMap.pkl")
    bad = next((c for cols in merged for c in cols if not 0 <= c < n_raw), None)
    if bad is not None:
        raise HashbenchError(f"{where}: TagIdMergeMap.pkl names raw tag {bad}; train_tag.txt has columns "
                             f"0..{n_raw - 1}")
    vocab = None
    if vocab_raw is not None:
        words = [ln.split()[0] for ln in vocab_raw.decode("utf-8", "replace").splitlines() if ln.strip()]
        vocab = words if len(words) == n_raw else None
    return Release(parts, train_tags.astype(np.uint8), merged, embeddings.astype(np.float32), vocab)


class WsdhqLists:
    """Mixin for a DatasetSpec whose lists may come from WSDHQ's release (``split.format: wsdhq``)."""

    wsdhq_folder: ClassVar[str] = ""

    def list_sources(self, split: dict) -> list[Source]:
        if split["protocol"] == "lists" and split["format"] == "wsdhq":
            return [RELEASE]
        return super().list_sources(split)

    def read_lists(self, split: dict, files: dict[str, Path], names, labels) -> tuple[dict, dict, dict]:
        if split["format"] != "wsdhq":
            return super().read_lists(split, files, names, labels)
        where = f"{self.name}.split"
        release = read_release(files[RELEASE.name], self.wsdhq_folder, where)
        arrays, summary = lists.resolve(release.parts, names, labels, split["check_labels"], where)
        rows = release.train_tags
        arrays.update(official_tag_indptr=np.concatenate([[0], np.cumsum(rows.sum(axis=1))]).astype(np.int64),
                      official_tag_indices=np.nonzero(rows)[1].astype(np.int32),
                      official_tag_embeddings=release.embeddings)
        info = {"source": f"gimpong/AAAI21-WSDHQ data.tar.gz, {self.wsdhq_folder}/", "merged": release.merged,
                "vocab": release.vocab, "n_raw": int(rows.shape[1])}
        summary["official_tags"] = {"train_rows": int(len(rows)), "raw_tags": int(rows.shape[1]),
                                    "merged_tags": len(release.merged)}
        return arrays, summary, {"official_tags.json": info}
