"""Split protocols (query / database / train [/ labeled / unlabeled]) and the checks every split must pass.

A protocol is the ``split`` sub-block of a dataset's params block, e.g.::

    split: {protocol: per_class, query_per_class: 50, train_per_class: 100, train_in_database: true,
            labeled_unlabeled: true}

Protocols:

- ``per_class`` (single-label sets, CIFAR-10 style): ``query_per_class`` items of every class are queries, the
  rest the database; ``train_per_class`` per class are drawn from the database (``train_in_database: true``,
  e.g. DeepHash-pytorch ``cifar10-1``) or set aside from it (``false``: database = all - query - train, e.g.
  ``cifar10``/GPQ).
- ``quota`` (multi-label sets, NUS-WIDE-21 style): greedy per-class quotas; for each class in turn (column order, or
  rarest first) ``query_per_class`` items carrying it that are not chosen yet; then the same for train among the
  remaining items. Reusable by real sets through :func:`quota_sample`.
- ``random``: ``n_query`` queries and then ``n_train`` train items drawn uniformly from one seeded permutation
  (DeepHash-pytorch ``mirflickr``: 1,000 / 4,000, database = the other 20,000 with ``train_in_database: false``).
- ``partition``: the dataset's stored ``partition`` (1 = query side, e.g. an official test list or the
  mnist5k-tags query pool) gives the queries; the other side is the database; ``n_train`` items of it (all when
  null) are the training set.
- ``djsrh`` (DJSRH's MIRFlickr / NUS-WIDE recipe, seeded): for each label column in turn, among the items carrying
  it that are not chosen yet, ``query_per_class`` queries then ``train_per_class`` training items are drawn (the first
  column takes ``first_class_factor`` times as many; a column short of items gives what it has); the training set is
  then topped up at random from the database to ``n_train``; database = every item but the queries.
- ``lists``: published split lists (``format`` deephash, hyp2 or wsdhq; see :mod:`hashbench.lists`), matched to the
  items by the download stage; ``train_in_database: null`` takes what the lists give.

With ``labeled_unlabeled: true`` the split also has ``labeled`` = train and ``unlabeled`` = database - train, for
semi-supervised methods. With ``train_in_database: false`` that makes the unlabeled part the whole database (GPQ's
CIFAR-10 protocol: 5,000 labeled images outside the 54,000-image unlabeled database).

All randomness comes from ``np.random.default_rng([seed, 1])``; index arrays are sorted int64. The split stage
writes ``split.npz`` (loaded with allow_pickle=False) and ``split.json`` (counts, sha256 per array, rules checked).
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from . import lists
from .config import Param, validate
from .data import atomic_path, atomic_write_json
from .errors import HashbenchError

SPLIT_NPZ = "split.npz"
SPLIT_JSON = "split.json"
PARTS = ("query", "database", "train", "labeled", "unlabeled")
_SPLIT_STREAM = 1  # generation uses stream 0 of the same seed

_COMMON = {
    "train_in_database": Param(True, bool),
    "labeled_unlabeled": Param(False, bool),
}
PROTOCOLS: dict[str, dict[str, Param]] = {
    "per_class": {
        "protocol": Param("per_class", str),
        "query_per_class": Param(100, int, ge=1),
        "train_per_class": Param(500, int, ge=1),
        **_COMMON,
    },
    "quota": {
        "protocol": Param("quota", str),
        "query_per_class": Param(100, int, ge=1),
        "train_per_class": Param(500, int, ge=1),
        "class_order": Param("columns", str, choices=("columns", "rarest_first")),
        **_COMMON,
    },
    "partition": {
        "protocol": Param("partition", str),
        "n_train": Param(None, int, ge=1, nullable=True),
        **_COMMON,
    },
    "random": {
        "protocol": Param("random", str),
        "n_query": Param(1000, int, ge=1),
        "n_train": Param(4000, int, ge=1),
        **_COMMON,
    },
    "djsrh": {
        "protocol": Param("djsrh", str),
        "query_per_class": Param(80, int, ge=0),
        "train_per_class": Param(200, int, ge=0),
        "first_class_factor": Param(2, int, ge=1),
        "n_train": Param(5000, int, ge=1),
        "train_in_database": Param(True, bool, choices=(True,)),
        "labeled_unlabeled": Param(False, bool),
    },
    "lists": {
        "protocol": Param("lists", str),
        "format": Param("deephash", str, choices=("deephash", "hyp2", "wsdhq")),
        "n_query": Param(1000, int, ge=1),  # hyp2 only: the first n_query rows of flickr.txt's permutation
        "n_train": Param(4000, int, ge=1),  # hyp2 only: the next n_train rows
        "check_labels": Param(True, bool),
        "train_in_database": Param(None, bool, nullable=True),
        "labeled_unlabeled": Param(False, bool),
    },
}


# ------------------------------------------------------------------------------------------------ validation
def validate_protocol(block: Any, where: str = "split") -> dict:
    """The protocol with defaults filled in; one-line HashbenchError naming `where`.key otherwise."""
    if not isinstance(block, dict):
        raise HashbenchError(f"{where}: must be a mapping with a `protocol` key, got {block!r}")
    name = block.get("protocol")
    if name not in PROTOCOLS:
        raise HashbenchError(f"{where}.protocol: {name!r} is not allowed; use one of {', '.join(PROTOCOLS)}")
    return validate(where, block, PROTOCOLS[name])


def _where(dataset) -> str:
    return f"{getattr(dataset, 'name', 'dataset')}.split"


# ------------------------------------------------------------------------------------------------- sampling
def quota_sample(labels: np.ndarray, per_class: int, rng: np.random.Generator, available: np.ndarray | None = None,
                 class_order: str | np.ndarray = "columns", strict: bool = True,
                 class_names: list[str] | None = None, what: str = "split") -> np.ndarray:
    """Greedy per-class quota sampling (the NUS-WIDE-21 / DJSRH recipe, seeded).

    For each class in turn, `per_class` items that carry it, are `available` and are not chosen yet are drawn at
    random. Returns the chosen indices, sorted. For single-label data this is exact class-balanced sampling.
    With `strict`, a class with too few candidates is a HashbenchError; otherwise it gives what it has.
    """
    labels = np.asarray(labels)
    n, c = labels.shape
    free = np.ones(n, dtype=bool) if available is None else np.asarray(available, dtype=bool).copy()
    if isinstance(class_order, str):
        if class_order == "columns":
            order = np.arange(c)
        elif class_order == "rarest_first":
            order = np.argsort(labels.sum(axis=0), kind="stable")
        else:
            raise HashbenchError(f"{what}.class_order: {class_order!r} is not allowed; use columns or rarest_first")
    else:
        order = np.asarray(class_order, dtype=np.int64)
    chosen: list[np.ndarray] = []
    for cls in order:
        cand = np.flatnonzero(free & (labels[:, cls] > 0))
        if cand.size < per_class and strict:
            cname = class_names[cls] if class_names else str(cls)
            raise HashbenchError(f"{what}: class {cname!r} has only {cand.size} free items for a quota of "
                                 f"{per_class}; lower the per-class count")
        take = cand[rng.permutation(cand.size)[:per_class]]
        free[take] = False
        chosen.append(take)
    return np.sort(np.concatenate(chosen)).astype(np.int64) if chosen else np.zeros(0, np.int64)


def djsrh_sample(labels: np.ndarray, proto: dict, rng: np.random.Generator,
                 what: str = "split") -> tuple[np.ndarray, np.ndarray]:
    """(query, train) by DJSRH's per-label recipe (see the module doc), sorted int64."""
    labels = np.asarray(labels)
    n = len(labels)
    taken = np.zeros(n, dtype=bool)
    query, train = [], []
    for col in range(labels.shape[1]):
        factor = proto["first_class_factor"] if col == 0 else 1
        q, t = factor * proto["query_per_class"], factor * proto["train_per_class"]
        cand = np.flatnonzero(~taken & (labels[:, col] > 0))
        cand = cand[rng.permutation(cand.size)]
        query.append(cand[:q])
        train.append(cand[q:q + t])
        taken[cand[:q + t]] = True
    query, train = np.concatenate(query).astype(np.int64), np.concatenate(train).astype(np.int64)
    short = proto["n_train"] - train.size
    if short > 0:
        pool = _complement(n, query, train)
        if pool.size < short:
            raise HashbenchError(f"{what}.n_train: {n} items cannot give {proto['n_train']} training items outside "
                                 f"{query.size} queries; lower n_train")
        train = np.concatenate([train, pool[rng.permutation(pool.size)[:short]]])
    return np.sort(query), np.sort(train[:proto["n_train"]])


def _complement(n: int, *parts: np.ndarray) -> np.ndarray:
    mask = np.ones(n, dtype=bool)
    for part in parts:
        mask[part] = False
    return np.flatnonzero(mask).astype(np.int64)


def make_split(dataset, protocol: dict, seed: int) -> dict[str, np.ndarray]:
    """Split `dataset` (a :class:`hashbench.data.Dataset`) by `protocol`; sorted int64 index arrays per part."""
    where = _where(dataset)
    proto = validate_protocol(protocol, where)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise HashbenchError(f"{getattr(dataset, 'name', 'dataset')}.seed: {seed!r} is not allowed; use an "
                             f"integer >= 0")
    rng = np.random.default_rng([int(seed), _SPLIT_STREAM])
    n = dataset.n_items
    labels = dataset.labels()
    names = list(dataset.class_names)
    kind = proto["protocol"]
    if kind == "per_class" and not dataset.single_label:
        raise HashbenchError(f"{where}.protocol: per_class is not allowed for multi-label {dataset.name}; "
                             f"use quota or partition")
    if kind in ("per_class", "quota"):
        order = proto.get("class_order", "columns")
        query = quota_sample(labels, proto["query_per_class"], rng, class_order=order, class_names=names,
                             what=where)
        rest = _complement(n, query)
        avail = np.zeros(n, dtype=bool)
        avail[rest] = True
        train = quota_sample(labels, proto["train_per_class"], rng, available=avail, class_order=order,
                             class_names=names, what=where)
        database = rest if proto["train_in_database"] else _complement(n, query, train)
    elif kind == "random":
        if proto["n_query"] + proto["n_train"] > n:
            raise HashbenchError(f"{where}.n_train: {proto['n_train']} is not allowed with n_query "
                                 f"{proto['n_query']}; together they must leave a database in {n} items")
        order = rng.permutation(n)
        query = np.sort(order[:proto["n_query"]]).astype(np.int64)
        train = np.sort(order[proto["n_query"]:proto["n_query"] + proto["n_train"]]).astype(np.int64)
        database = _complement(n, query) if proto["train_in_database"] else _complement(n, query, train)
    elif kind == "djsrh":
        query, train = djsrh_sample(labels, proto, rng, where)
        database = _complement(n, query)
    elif kind == "lists":
        stored = lists.stored(dataset, where)
        query, train, database = (np.sort(stored[k]) for k in ("query", "train", "database"))
    else:  # partition
        part = dataset.partition()
        if part is None:
            raise HashbenchError(f"{where}.protocol: partition is not allowed for {dataset.name}, which stores "
                                 f"no partition; use per_class, quota or random")
        query = np.flatnonzero(part == 1).astype(np.int64)
        side = np.flatnonzero(part == 0).astype(np.int64)
        n_train = side.size if proto["n_train"] is None else proto["n_train"]
        if n_train > side.size:
            raise HashbenchError(f"{where}.n_train: {n_train} is not allowed; use an integer <= {side.size} "
                                 f"(the database side)")
        train = np.sort(rng.choice(side, n_train, replace=False)).astype(np.int64)
        database = side if proto["train_in_database"] else np.setdiff1d(side, train)
    split = {"query": query, "database": database, "train": train}
    if proto["labeled_unlabeled"]:
        split["labeled"] = train.copy()
        split["unlabeled"] = np.setdiff1d(database, train).astype(np.int64)
    return split


# ----------------------------------------------------------------------------------------------------- checks
def check_split(split: dict, dataset, protocol: dict) -> list[str]:
    """Check `split` against the protocol's rules; return the rules checked, raise HashbenchError on the first
    violation."""
    where = _where(dataset)
    proto = validate_protocol(protocol, where)
    n = dataset.n_items
    rules: list[str] = []

    def fail(msg: str) -> None:
        raise HashbenchError(f"{where}: {msg}")

    needed = ["query", "database", "train"] + (["labeled", "unlabeled"] if proto["labeled_unlabeled"] else [])
    for key in needed:
        if key not in split:
            fail(f"part {key!r} is missing; a {proto['protocol']} split has {', '.join(needed)}")
    unknown = sorted(set(split) - set(PARTS))
    if unknown:
        fail(f"part {unknown[0]!r} is not allowed; use {', '.join(PARTS)}")
    arr = {}
    for key, value in split.items():
        a = np.asarray(value)
        if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
            fail(f"{key} must be a 1-D integer index array, got {a.dtype} {a.shape}")
        if a.size and (a.min() < 0 or a.max() >= n):
            fail(f"{key} has indices outside 0..{n - 1}")
        if a.size != np.unique(a).size:
            fail(f"{key} has duplicate indices")
        arr[key] = a.astype(np.int64)
    rules.append("indices are 1-D integers, unique and in range")

    q, db, tr = arr["query"], arr["database"], arr["train"]
    if np.intersect1d(q, db).size:
        fail(f"{np.intersect1d(q, db).size} query items are also in the database")
    rules.append("query ∩ database = ∅")
    if np.intersect1d(q, tr).size:
        fail(f"{np.intersect1d(q, tr).size} query items are also in train")
    rules.append("query ∩ train = ∅")
    inside = proto["train_in_database"]
    if inside is None:  # lists with train_in_database: null take what the lists give
        inside = not np.setdiff1d(tr, db).size
        if not inside and np.intersect1d(tr, db).size:
            fail(f"{np.intersect1d(tr, db).size} of {tr.size} train items are in the database: the lists put train "
                 f"neither inside nor outside it")
    if inside:
        if np.setdiff1d(tr, db).size:
            fail(f"{np.setdiff1d(tr, db).size} train items are not in the database (train_in_database: true)")
        rules.append("train ⊂ database")
    else:
        if np.intersect1d(tr, db).size:
            fail(f"{np.intersect1d(tr, db).size} train items are in the database (train_in_database: false)")
        rules.append("train ∩ database = ∅")
    covered = np.union1d(np.union1d(q, db), tr).size
    if covered != n:
        hint = "; choose the dataset subset the lists were made from" if proto["protocol"] == "lists" else ""
        fail(f"query ∪ database ∪ train covers {covered} of {n} items; every item must be in one part{hint}")
    rules.append("query ∪ database ∪ train = all items")
    if "labeled" in arr or "unlabeled" in arr:
        lab, unl = arr.get("labeled", np.zeros(0, np.int64)), arr.get("unlabeled", np.zeros(0, np.int64))
        if np.intersect1d(lab, unl).size:
            fail("labeled and unlabeled overlap")
        if inside or not proto["labeled_unlabeled"]:
            if not np.array_equal(np.union1d(lab, unl), np.sort(db)):
                fail("labeled ∪ unlabeled must equal the database")
            rules.append("labeled ∪ unlabeled = database, disjoint")
        else:
            if not np.array_equal(np.sort(unl), np.sort(db)):
                fail("unlabeled must equal the database (train_in_database: false)")
            rules.append("unlabeled = database")
        if proto["labeled_unlabeled"]:
            if not np.array_equal(np.sort(lab), np.sort(tr)):
                fail("labeled must equal train")
            rules.append("labeled = train")

    kind = proto["protocol"]
    labels = dataset.labels()
    c = labels.shape[1]
    if kind in ("per_class", "quota"):
        qpc, tpc = proto["query_per_class"], proto["train_per_class"]
        for key, quota in (("query", qpc), ("train", tpc)):
            if arr[key].size != c * quota:
                fail(f"{key} has {arr[key].size} items; the protocol asks {c} classes x {quota} = {c * quota}")
            per = labels[arr[key]].sum(axis=0)
            bad = np.flatnonzero(per != quota) if kind == "per_class" else np.flatnonzero(per < quota)
            if bad.size:
                cname = dataset.class_names[bad[0]]
                fail(f"{key} has {int(per[bad[0]])} items of class {cname!r}; the protocol asks "
                     f"{'exactly' if kind == 'per_class' else 'at least'} {quota}")
        rules.append(f"{'exactly' if kind == 'per_class' else 'at least'} query_per_class={qpc} and "
                     f"train_per_class={tpc} per class; |query| = {c * qpc}, |train| = {c * tpc}")
    elif kind == "random":
        for key in ("query", "train"):
            if arr[key].size != proto[f"n_{key}"]:
                fail(f"{key} has {arr[key].size} items; the protocol asks n_{key} = {proto[f'n_{key}']}")
        rules.append(f"|query| = {proto['n_query']}, |train| = {proto['n_train']}")
    elif kind == "djsrh":
        most = proto["query_per_class"] * (c - 1 + proto["first_class_factor"])
        if tr.size != proto["n_train"] or q.size > most:
            fail(f"query/train have {q.size}/{tr.size} items; the protocol asks at most {most} queries and "
                 f"n_train = {proto['n_train']}")
        if not np.array_equal(np.sort(db), _complement(n, q)):
            fail("database must be every item but the queries")
        rules.append(f"|query| = {q.size} <= {most} (per-label quotas), |train| = {proto['n_train']}, "
                     f"database = all - query")
    elif kind == "lists":
        published = lists.stored(dataset, where)
        for key in ("query", "train", "database"):
            if not np.array_equal(np.sort(arr[key]), np.sort(published[key])):
                fail(f"{key} differs from the published list ({arr[key].size} vs {published[key].size} items)")
        rules.append(f"query / train / database = the published {proto['format']} lists "
                     f"({q.size} / {tr.size} / {db.size})")
    else:
        part = dataset.partition()
        if part is None:
            fail("protocol partition needs a dataset with a stored partition")
        if not np.array_equal(np.sort(q), np.flatnonzero(part == 1)):
            fail("query must be exactly the items with partition == 1")
        rules.append("query = partition side 1")
        side = np.flatnonzero(part == 0)
        expect_train = side.size if proto["n_train"] is None else proto["n_train"]
        if tr.size != expect_train:
            fail(f"train has {tr.size} items; the protocol asks {expect_train}")
        if np.setdiff1d(tr, side).size:
            fail("train must lie on partition side 0")
        rules.append(f"|train| = {expect_train} from partition side 0")
    return rules


# ----------------------------------------------------------------------------------------------------- files
def _sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.int64).tobytes()).hexdigest()


def save_split(folder, split: dict, dataset, protocol: dict, seed: int | None = None) -> dict:
    """Check `split`, then write ``split.npz`` and ``split.json`` into `folder` atomically; return the JSON."""
    rules = check_split(split, dataset, protocol)
    proto = validate_protocol(protocol, _where(dataset))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.sort(np.asarray(split[k], dtype=np.int64), kind="stable") for k in PARTS if k in split}
    labels = dataset.labels()
    info = {
        "dataset": dataset.name,
        "n_items": int(dataset.n_items),
        "protocol": proto["protocol"],
        "settings": proto,
        "seed": seed,
        "counts": {k: int(v.size) for k, v in arrays.items()},
        "per_class": {k: labels[v].sum(axis=0).astype(int).tolist() for k, v in arrays.items()},
        "class_names": list(dataset.class_names),
        "sha256": {k: _sha256(v) for k, v in arrays.items()},
        "rules_checked": rules,
    }
    npz = folder / SPLIT_NPZ
    with atomic_path(npz) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    atomic_write_json(folder / SPLIT_JSON, info)
    return info


def load_split(folder) -> dict[str, np.ndarray]:
    """The split arrays written by save_split, verified against split.json's sha256 when present."""
    folder = Path(folder)
    npz = folder / SPLIT_NPZ
    if not npz.is_file():
        raise HashbenchError(f"{npz}: split file missing; run `dvc repro split`")
    try:
        with np.load(npz, allow_pickle=False) as z:
            split = {k: z[k].astype(np.int64) for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        raise HashbenchError(f"{npz}: not a readable split file (truncated or corrupt); run `dvc repro split`")\
            from None
    meta = folder / SPLIT_JSON
    if meta.is_file():
        try:
            sha = json.loads(meta.read_text(encoding="utf-8")).get("sha256", {})
        except ValueError:
            raise HashbenchError(f"{meta}: not valid JSON; run `dvc repro split`") from None
        for key, value in split.items():
            if key in sha and sha[key] != _sha256(value):
                raise HashbenchError(f"{npz}: array {key!r} does not match the sha256 in {SPLIT_JSON}; "
                                     f"run `dvc repro split`")
    return split

