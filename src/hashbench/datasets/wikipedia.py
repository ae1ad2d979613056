"""``wikipedia``: the Wikipedia image-text set of Rasiwasia et al. (ACM MM 2010), DJSRH's third set, from its
original release ``wikipedia_dataset.zip``: 2,866 image-text pairs in 10 categories, ``trainset_txt_img_cat.list``
(2,173 pairs) and ``testset_txt_img_cat.list`` (693), each line ``<text id> <image id> <category 1..10>``; images
``images/<category>/<image id>.jpg``, articles ``texts/<text id>.xml`` (the article in a ``<text>`` element).

Text (``text``): ``bow`` (default) is a 0/1 bag of words over the article text: lower-case alphabetic words of 3+
letters, English stop words (scikit-learn's list) left out, the ``vocab_size`` words found in most *training*
articles with at least ``min_df`` of them (ties by the word), so the query texts never shape the vocabulary. ``lda``
is the authors' 10-d LDA topic features (``T_tr`` / ``T_te`` of ``raw_features.mat``, which DJSRH reads), taken from
the archive or from ``raw_features.mat`` placed next to it.

No checksum is published: the md5 of the placed archive is recorded in the manifest, and its size (2 GiB), each
article (4 MiB) and each image (64 MiB) are capped. Split: the official one (queries = the 693 test pairs, train =
database = the 2,173 training pairs), as DJSRH.
"""
from __future__ import annotations

import html
import posixpath
import re
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..config import Param
from ..errors import HashbenchError
from .archives import SAFE_NAME, copy_member, read_member, reading_zip, zip_files_by_basename
from .base import IMAGE_PARAMS, OFFICIAL_SPLIT, DatasetSpec, Source
from .matfiles import read_mat

ARCHIVE, FEATURES = "wikipedia_dataset.zip", "raw_features.mat"
CATEGORIES = ["art", "biology", "geography", "history", "literature", "media", "music", "royalty", "sport", "warfare"]
LISTS = (("trainset_txt_img_cat.list", 0), ("testset_txt_img_cat.list", 1))  # (file, partition side)
MAX_TEXT, MAX_IMAGE = 4 << 20, 64 << 20
_TEXT = re.compile(r"<text>(.*?)</text>", re.S | re.I)
_WORD = re.compile(r"[a-z]{3,}")


def words(article: str) -> set[str]:
    """The distinct words of an article's ``<text>`` element (the whole file when it has none)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    hit = _TEXT.search(article)
    body = html.unescape(re.sub(r"<[^>]+>", " ", hit.group(1) if hit else article)).lower()
    return {w for w in _WORD.findall(body) if w not in ENGLISH_STOP_WORDS}


def bag_of_words(docs: list[set[str]], train: np.ndarray, vocab_size: int, min_df: int) -> tuple[np.ndarray, list]:
    """0/1 (N, V) over the words in most training documents (>= min_df of them; ties by the word)."""
    df: dict[str, int] = {}
    for i in np.flatnonzero(train):
        for w in docs[i]:
            df[w] = df.get(w, 0) + 1
    vocab = sorted((w for w, c in df.items() if c >= min_df), key=lambda w: (-df[w], w))[:vocab_size]
    column = {w: j for j, w in enumerate(vocab)}
    bag = np.zeros((len(docs), len(vocab)), np.float32)
    for i, doc in enumerate(docs):
        bag[i, [column[w] for w in doc if w in column]] = 1.0
    return bag, vocab


class Wikipedia(DatasetSpec):
    name = "wikipedia"
    title = "Wikipedia image-text (Rasiwasia et al. 2010)"
    page = "http://www.svcl.ucsd.edu/projects/crossmodal/"
    license = "Wikipedia image-text (Rasiwasia et al. 2010): research use"
    modalities = frozenset({"image", "text"})
    sources = (
        Source(ARCHIVE, f"http://www.svcl.ucsd.edu/projects/crossmodal/{ARCHIVE}", max_bytes=2 << 30,
               where="svcl.ucsd.edu/projects/crossmodal"),
        Source(FEATURES, optional=True, max_bytes=64 << 20, where="the authors' feature package (text: lda)"),
    )
    schema = {**IMAGE_PARAMS, "text": Param("bow", str, choices=("bow", "lda")),
              "vocab_size": Param(5000, int, ge=1), "min_df": Param(2, int, ge=1)}
    split_default = OFFICIAL_SPLIT
    list_formats = ()  # the official lists are the partition

    def convert(self, files: dict[str, Path], p: dict, folder: Path) -> dict:
        zpath = files[ARCHIVE]
        with reading_zip(zpath) as zf:
            members = zip_files_by_basename(zf)
            categories = CATEGORIES
            if "categories.list" in members:
                listed = read_member(zpath, zf, members["categories.list"], MAX_TEXT, "categories.list").decode(
                    "utf-8", "replace").split()
                if len(listed) == len(CATEGORIES) and all(SAFE_NAME.match(c) for c in listed):
                    categories = listed
            rows = []  # (text id, image id, category index, side)
            for fname, side in LISTS:
                if fname not in members:
                    raise HashbenchError(f"{zpath}: {fname} not found; use the official {ARCHIVE}")
                text = read_member(zpath, zf, members[fname], MAX_TEXT, fname).decode("utf-8", "replace")
                for line_no, line in enumerate(text.splitlines(), 1):
                    fields = line.split()
                    if not fields:
                        continue
                    if len(fields) != 3 or not fields[2].isdigit() or not 1 <= int(fields[2]) <= len(categories):
                        raise HashbenchError(f"{fname} line {line_no}: {line.strip()!r} is not '<text id> <image id> "
                                             f"<category 1..{len(categories)}>'")
                    rows.append((fields[0], fields[1], int(fields[2]) - 1, side))
            docs, paths = [], []
            for text_id, image_id, cat, _ in tqdm(rows, desc="Wikipedia pairs", unit="pair", mininterval=1.0):
                xml, jpg = members.get(f"{text_id}.xml"), members.get(f"{image_id}.jpg")
                if xml is None or jpg is None:
                    raise HashbenchError(f"{zpath}: {f'{text_id}.xml' if xml is None else f'{image_id}.jpg'} not "
                                         f"found; use the official {ARCHIVE}")
                docs.append(words(read_member(zpath, zf, xml, MAX_TEXT, xml.filename).decode("utf-8", "replace")))
                rel = f"{categories[cat]}/{image_id}.jpg"
                copy_member(zpath, zf, jpg, folder / "images" / categories[cat] / posixpath.basename(rel), MAX_IMAGE)
                paths.append(rel)
            features = read_member(zpath, zf, members[FEATURES], 64 << 20, FEATURES) \
                if p["text"] == "lda" and FEATURES in members else None
        side = np.array([r[3] for r in rows], np.uint8)
        if p["text"] == "lda":
            text, vocab = self.lda(features if features is not None else files.get(FEATURES), side), None
        else:
            text, vocab = bag_of_words(docs, side == 0, p["vocab_size"], p["min_df"])
        counts = {"train": int((side == 0).sum()), "test": int(side.sum())}
        if counts != {"train": 2173, "test": 693}:
            warnings.warn(f"wikipedia: {counts} pairs, the release has 2,173 / 693", stacklevel=2)
        return self.write(
            folder, p, files, labels=np.eye(len(categories), dtype=np.uint8)[[r[2] for r in rows]],
            class_names=categories, single_label=True, image_paths=paths, image_root="images",
            image_size=p["image_size"], text=text, text_vocab=vocab, partition=side,
            note="partition 1 = testset_txt_img_cat.list",
            extra_manifest={"generator": {"text": p["text"], "pairs": counts, "text_dims": int(text.shape[1])}})

    @staticmethod
    def lda(source, side: np.ndarray) -> np.ndarray:
        """The 10-d LDA rows (T_tr then T_te) of raw_features.mat, in list order."""
        if source is None:
            raise HashbenchError(f"wikipedia.text: lda needs {FEATURES} (in {ARCHIVE} or placed in "
                                 f"data/manual/wikipedia/); use text: bow")
        mat = read_mat(source, ("T_tr", "T_te"), FEATURES)
        train, test = np.asarray(mat["T_tr"], np.float32), np.asarray(mat["T_te"], np.float32)
        if len(train) != (side == 0).sum() or len(test) != side.sum() or train.shape[1] != test.shape[1]:
            raise HashbenchError(f"{FEATURES}: T_tr {train.shape} / T_te {test.shape} do not match the "
                                 f"{(side == 0).sum()} / {side.sum()} pairs of the lists")
        return np.concatenate([train, test])
