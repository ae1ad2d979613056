"""Published split lists: the input of the ``lists`` split protocol.

The download stage parses the list files a user placed (:func:`read_parts`), matches every listed file to a converted
item by file name and checks it (:func:`resolve`), and stores the result in ``dataset.h5`` as ``list_query``,
``list_train`` and ``list_database`` (item indices in list order). The split stage reads them back (:func:`stored`)
and runs the usual split checks on them.

Formats (``split.format``), files under ``data/manual/<dataset>/lists/``:

- ``deephash`` (swuxyj/DeepHash-pytorch; HyP²'s NUS-WIDE lists use it too): ``test.txt`` (queries), ``train.txt``
  and optionally ``database.txt``; each line ``<path> <0/1> <0/1> ...``. Without ``database.txt`` the database is
  every item but the queries (DeepHash-pytorch's ``nuswide_21``).
- ``hyp2`` (JerryXu0129/HyP2-Loss, Flickr-25K): ``img.txt`` (a file name per line), ``targets.txt`` (a 0/1 label row
  per line, same order) and ``flickr.txt`` (a JSON list, a permutation of those rows): the first ``n_query`` rows of
  the permutation are the queries, the next ``n_train`` the training set, the rest the database.
- ``wsdhq`` (gimpong/AAAI21-WSDHQ's ``data.tar.gz``): read by :mod:`hashbench.datasets.wsdhq_release` into the same
  parts.

Rules: every listed file must be one of the converted items (matched by its base name, which must be unique among
the items) and appear once per list; with ``check_labels`` a list's label rows must equal the converted label rows
(a list with another number of label columns is refused, except WSDHQ's label files, which are then not compared).
"""
from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import HashbenchError

PARTS = ("query", "train", "database")
MAX_LIST_BYTES = 256 << 20  # a list file larger than this is refused unread
FILES = {
    "deephash": {"query": "test.txt", "train": "train.txt", "database": "database.txt"},
    "hyp2": {"names": "img.txt", "labels": "targets.txt", "order": "flickr.txt"},
}
OPTIONAL = {"database.txt"}


@dataclass
class ListPart:
    """One list: where it came from (for messages), the listed paths, their label rows (or None) and line numbers."""

    source: str
    names: list[str]
    lines: list[int]
    labels: np.ndarray | None = None
    same_columns: bool = True  # False: label rows with another column count are left uncompared


def list_files(fmt: str) -> list[tuple[str, bool]]:
    """(path under data/manual/<dataset>/, optional) of the files a format reads; WSDHQ's come in one archive."""
    return [(f"lists/{name}", name in OPTIONAL) for name in FILES.get(fmt, {}).values()]


def _text(path: Path, where: str) -> str:
    size = path.stat().st_size
    if size > MAX_LIST_BYTES:
        raise HashbenchError(f"{where}: {path} has {size} bytes, over the {MAX_LIST_BYTES}-byte limit for a list; "
                             f"place the published list file")
    return path.read_bytes().decode("utf-8", "replace")


def label_rows(rows: list[list[str]], lines: list[int], source: str, where: str) -> np.ndarray:
    """0/1 label rows from tokens; a ragged row or a value other than 0/1 is one line naming the file and line."""
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        first = next(k for k, r in enumerate(rows) if len(r) != len(rows[0]))
        raise HashbenchError(f"{where}: {source} line {lines[first]} has {len(rows[first])} label values, line "
                             f"{lines[0]} has {len(rows[0])}; every row needs the same columns")
    try:
        values = np.array(rows, dtype=np.float64).reshape(len(rows), -1)
        bad = np.flatnonzero(~np.isin(values, (0, 1)).all(axis=1))
        k = int(bad[0]) if bad.size else None
    except ValueError:
        values, k = None, next(k for k, r in enumerate(rows) if not all(_is01(v) for v in r))
    if k is not None:
        raise HashbenchError(f"{where}: {source} line {lines[k]}: label values must be 0 or 1, got "
                             f"{' '.join(rows[k][:8])}{' ...' if len(rows[k]) > 8 else ''}")
    return values.astype(np.uint8)


def _is01(token: str) -> bool:
    try:
        return float(token) in (0.0, 1.0)
    except ValueError:
        return False


def parse_table(text: str, source: str, where: str, with_names: bool = True) -> ListPart:
    """Lines ``<path> <labels...>`` (or label rows only) into a ListPart; blank lines are skipped."""
    names, lines, rows = [], [], []
    for line_no, line in enumerate(text.splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        lines.append(line_no)
        if with_names:
            names.append(tokens[0])
            tokens = tokens[1:]
        rows.append(tokens)
    labels = label_rows(rows, lines, source, where) if rows and any(rows) else None
    return ListPart(source, names, lines, labels)


def read_parts(proto: dict, files: dict[str, Path], where: str) -> dict[str, ListPart]:
    """The parts of a ``deephash`` or ``hyp2`` list set from the placed files (keys ``lists/<file>``)."""
    fmt = proto["format"]
    if fmt == "deephash":
        return {part: parse_table(_text(files[f"lists/{name}"], where), name, where)
                for part, name in FILES[fmt].items() if f"lists/{name}" in files}
    names = [ln.strip() for ln in _text(files["lists/img.txt"], where).splitlines() if ln.strip()]
    table = parse_table(_text(files["lists/targets.txt"], where), "targets.txt", where, with_names=False)
    try:
        order = json.loads(_text(files["lists/flickr.txt"], where))
    except ValueError:
        raise HashbenchError(f"{where}: flickr.txt is not a JSON list; place HyP²'s flickr.txt") from None
    n = len(names)
    if table.labels is None or len(table.labels) != n:
        raise HashbenchError(f"{where}: targets.txt has {len(table.lines)} rows for the {n} names of img.txt")
    if not isinstance(order, list) or sorted(x for x in order if isinstance(x, int)) != list(range(n)):
        raise HashbenchError(f"{where}: flickr.txt must be a permutation of 0..{n - 1} (the rows of img.txt)")
    if proto["n_query"] + proto["n_train"] > n:
        raise HashbenchError(f"{where}.n_train: {proto['n_train']} with n_query {proto['n_query']} leaves no "
                             f"database in the {n} rows of img.txt")
    cuts = {"query": order[:proto["n_query"]], "train": order[proto["n_query"]:proto["n_query"] + proto["n_train"]],
            "database": order[proto["n_query"] + proto["n_train"]:]}
    return {part: ListPart("img.txt", [names[i] for i in rows], [i + 1 for i in rows], table.labels[rows])
            for part, rows in cuts.items()}


def base_name(path: str) -> str:
    return posixpath.basename(path.replace("\\", "/"))


def resolve(parts: dict[str, ListPart], item_names: list[str], labels: np.ndarray, check_labels: bool,
            where: str) -> tuple[dict[str, np.ndarray], dict]:
    """Item indices per part (``list_<part>`` arrays, in list order; the database defaults to every item but the
    queries) and a summary for the manifest. One-line HashbenchError for anything the rules refuse."""
    n = len(labels)
    if len(item_names) != n:
        raise HashbenchError(f"{where}.protocol: lists needs the items' file names, which this conversion lacks "
                             f"(place the archive that names them, e.g. NUS-WIDE's ImageList.zip)")
    index: dict[str, int] = {}
    ambiguous: set[str] = set()
    for i, name in enumerate(item_names):
        key = base_name(name)
        if key in index:
            ambiguous.add(key)
        index.setdefault(key, i)
    arrays, summary = {}, {"counts": {}, "labels_checked": {}}
    for part, lp in parts.items():
        idx = np.empty(len(lp.names), np.int64)
        first_line: dict[int, int] = {}
        for k, (name, line_no) in enumerate(zip(lp.names, lp.lines)):
            key = base_name(name)
            j = index.get(key)
            if j is None:
                raise HashbenchError(f"{where}: {lp.source} line {line_no}: {name} is not among the {n} converted "
                                     f"items; the lists were made from another version or subset of the dataset")
            if key in ambiguous:
                raise HashbenchError(f"{where}: {lp.source} line {line_no}: {key} names several converted items")
            if j in first_line:
                raise HashbenchError(f"{where}: {lp.source} line {line_no}: {name} is listed twice (first at line "
                                     f"{first_line[j]})")
            first_line[j] = line_no
            idx[k] = j
        arrays[f"list_{part}"] = idx
        summary["counts"][part] = int(idx.size)
        if check_labels and lp.labels is not None:
            summary["labels_checked"][part] = _compare(lp, labels[idx], where)
    if "list_database" not in arrays:
        rest = np.ones(n, bool)
        rest[arrays["list_query"]] = False
        arrays["list_database"] = np.flatnonzero(rest).astype(np.int64)
        summary["counts"]["database"] = int(arrays["list_database"].size)
        summary["database"] = "every item but the queries (no database list)"
    return arrays, summary


def _compare(lp: ListPart, converted: np.ndarray, where: str) -> str:
    listed = lp.labels
    if listed.shape[1] != converted.shape[1]:
        if not lp.same_columns:
            return f"not compared ({listed.shape[1]} label columns, the dataset has {converted.shape[1]})"
        raise HashbenchError(f"{where}: {lp.source} has {listed.shape[1]} label columns, the converted items "
                             f"{converted.shape[1]}; the lists use another label set (or set "
                             f"{where}.check_labels: false)")
    bad = np.flatnonzero((listed != converted).any(axis=1))
    if bad.size:
        k = int(bad[0])
        raise HashbenchError(
            f"{where}: {lp.source}: {bad.size} of {len(listed)} listed items carry other labels than the converted "
            f"ones (first: line {lp.lines[k]}, {lp.names[k]}: list {''.join(map(str, listed[k]))} vs converted "
            f"{''.join(map(str, converted[k]))}); use the dataset options the lists were made with (or set "
            f"{where}.check_labels: false)")
    return "equal"


def stored(dataset, where: str) -> dict[str, np.ndarray]:
    """The list parts the download stage stored (item indices in list order)."""
    try:
        return {part: dataset.array(f"list_{part}") for part in PARTS}
    except HashbenchError:
        raise HashbenchError(f"{where}.protocol: lists needs the published lists inside data/raw; run the download "
                             f"stage with this protocol (`dvc repro download`)") from None
