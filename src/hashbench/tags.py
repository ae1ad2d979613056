"""Tag processing for weakly supervised methods (WSDHQ): from raw user tags of the training images to merged tags,
their word embeddings and one multi-hot weak target per training image.

The official WSDHQ tag script (``data/tag_preproc.py``, run by ``scripts/tag_processing.sh``) is not public: it ships
only inside the authors' ``data.tar.gz``, and its thresholds are not published. What follows is OUR reconstruction
of the paper's description (word2vec per tag -> tag graph from cosine similarity -> neighbour-aggregation
enhancement -> DBSCAN synonym merge -> unit sphere); every step and threshold is a param of the ``tags`` block:

1. frequency filter: raw tags used by fewer than ``min_count`` training images are dropped ("rare");
2. word vectors: ``word2vec: corpus`` trains gensim Word2Vec on the training images' (filtered) tag lists -- one
   sentence per image, the whole list as the context window, seeded, one worker, deterministic hash -- or
   ``word2vec: <path>`` loads a pretrained word2vec file (e.g. GoogleNews-vectors-negative300.bin.gz) with
   ``KeyedVectors.load_word2vec_format``; tags without a vector are dropped ("oov");
3. tag graph: a_ij = 1[cos(t_i, t_j) >= tau], with self-loops;
4. enhancement: t~_i = sum_j a_ij u_j / sum_j a_ij over the unit vectors u_j, then L2-normalised;
5. merging: sklearn DBSCAN(metric="cosine", eps, min_samples) over the enhanced vectors; each cluster is one
   merged tag whose embedding is the L2-normalised mean of its members' enhanced vectors (DBSCAN noise, possible only
   with min_samples > 1, is dropped: "dbscan_noise").

``source: official`` skips all of this and takes WSDHQ's own processed tags (raw train tags, merge map and merged-tag
embeddings from the authors' ``data.tar.gz``, stored in ``data/raw`` by the download stage with
``split.format: wsdhq``; the tags stage runs :func:`hashbench.official_tags.run` then).

``process: false`` is the ablation: steps 3-5 are skipped and every kept raw tag is its own target, with its
L2-normalised word vector (normalised as the processed embeddings are, so the loss weights mean the same).

Only the training images' tags are read (never a query's). Outputs (folder ``data/tags``): ``vocab.json``,
``merge_map.json``, ``tags.h5`` (``embeddings``, ``targets``, ``train_index``) and ``report.json``; see
:func:`write_outputs`. A dataset without tags gets an empty but valid output so that the DAG stays static.
"""
from __future__ import annotations

import gzip
import json
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import scipy.sparse as sp

from .config import Param, validate
from .data import atomic_path, atomic_write_json, open_dataset
from .errors import HashbenchError

GOOGLE_NEWS_HINT = ("the GoogleNews vectors (GoogleNews-vectors-negative300.bin.gz) are linked from "
                    "https://code.google.com/archive/p/word2vec/ and the WSDHQ README (github.com/gimpong/AAAI21-WSDHQ)")

SCHEMA: dict[str, Param] = {
    "process": Param(True, bool),  # false: raw tags as targets (the ablation)
    "word2vec": Param("corpus", str),  # "corpus" or the path of a pretrained word2vec file
    "binary": Param(None, bool, nullable=True),  # pretrained file format; null: binary iff the name has ".bin"
    "limit": Param(None, int, ge=1, nullable=True),  # pretrained: read only the first `limit` vectors
    "min_count": Param(5, int, ge=1),  # frequency filter (training images per tag)
    "tau": Param(0.9, float, ge=-1.0, le=1.0),  # tag-graph threshold on cosine similarity
    "eps": Param(0.15, float, gt=0.0, le=2.0),  # DBSCAN radius in cosine distance
    "min_samples": Param(1, int, ge=1),  # DBSCAN core-point size (1: no noise)
    "vector_size": Param(100, int, ge=2),  # corpus Word2Vec dimension
    "window": Param(32, int, ge=1),  # corpus Word2Vec context (>= longest tag list: the whole list)
    "sg": Param(True, bool),  # skip-gram (true) or CBOW
    "negative": Param(15, int, ge=1),
    "sample": Param(0.001, float, ge=0.0),
    "w2v_epochs": Param(40, int, ge=1),
    "seed": Param(0, int, ge=0),
    "source": Param("ours", str, choices=("ours", "official")),  # official: WSDHQ's processed tags (its data.tar.gz)
}


def validate_params(block: dict | None) -> dict:
    return validate("tags", block, SCHEMA)


# --------------------------------------------------------------------------------------------- word vectors
def stable_hash(text: str) -> int:
    """PYTHONHASHSEED-independent replacement for hash() in gensim's seeded vectors."""
    return zlib.crc32(text.encode("utf-8"))


class Vectors:
    """A minimal word -> vector lookup (gensim KeyedVectors or a dict in tests and benchmarks)."""

    def __init__(self, words: list[str], matrix: np.ndarray):
        self.index = {w: i for i, w in enumerate(words)}
        self.matrix = np.asarray(matrix, dtype=np.float32)

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def lookup(self, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(found mask (n,), vectors of the found words (k, dim))."""
        rows = np.array([self.index.get(w, -1) for w in words], dtype=np.int64)
        found = rows >= 0
        return found, self.matrix[rows[found]]


def train_corpus_word2vec(sentences: list[list[str]], p: dict) -> Vectors:
    """Word2Vec on the training images' tag lists: seeded, one worker, no window shrinking, deterministic hash."""
    from gensim.models import Word2Vec

    sentences = [s for s in sentences if s]
    if not sentences:
        return Vectors([], np.zeros((0, p["vector_size"]), np.float32))
    model = Word2Vec(sentences=sentences, vector_size=p["vector_size"], window=p["window"], min_count=1,
                     sg=int(p["sg"]), negative=p["negative"], sample=p["sample"], epochs=p["w2v_epochs"],
                     seed=p["seed"], workers=1, hashfxn=stable_hash, shrink_windows=False, sorted_vocab=1)
    kv = model.wv
    return Vectors(list(kv.index_to_key), kv.vectors)


def load_pretrained(path: str, binary: bool | None = None, limit: int | None = None) -> Vectors:
    """A pretrained word2vec file (text or binary, optionally gzipped) via gensim's KeyedVectors."""
    from gensim.models import KeyedVectors

    file = Path(path)
    if not file.is_file():
        raise HashbenchError(f"tags.word2vec: file {path} not found; use `corpus` or place a word2vec file there "
                             f"({GOOGLE_NEWS_HINT})")
    if binary is None:
        binary = ".bin" in file.name
    _check_word2vec_header(file, binary, limit)
    try:
        kv = KeyedVectors.load_word2vec_format(str(file), binary=binary, limit=limit)
    except (ValueError, UnicodeDecodeError, OSError, EOFError) as err:
        raise HashbenchError(f"tags.word2vec: {path} is not a readable {'binary' if binary else 'text'} word2vec "
                             f"file ({type(err).__name__}); set tags.binary to match the file") from None
    return Vectors(list(kv.index_to_key), kv.vectors)


MAX_VECTOR_BYTES = 16 << 30  # float32 vectors read at once (GoogleNews: 3,000,000 x 300 = 3.6 GB)


def _check_word2vec_header(file: Path, binary: bool, limit: int | None) -> None:
    """gensim allocates count x dim floats from the first line before reading a vector: check that line first."""
    opener = gzip.open if file.name.endswith(".gz") else open
    try:
        with opener(file, "rb") as handle:
            header = handle.readline(256).split()
        count, dim = int(header[0]), int(header[1])
    except (OSError, EOFError, ValueError, IndexError):
        raise HashbenchError(f"tags.word2vec: {file} does not start with a word2vec header line `<count> "
                             f"<dimensions>`") from None
    n = count if limit is None else min(count, limit)
    if count < 1 or dim < 1 or n * dim * 4 > MAX_VECTOR_BYTES:
        raise HashbenchError(f"tags.word2vec: {file} header claims {count} vectors of {dim} dimensions "
                             f"({n * dim * 4 / 2**30:.1f} GiB to read); use a real word2vec file or set tags.limit "
                             f"<= {max(1, MAX_VECTOR_BYTES // (4 * max(dim, 1)))}")
    smallest = n * dim * (4 if binary else 2)  # bytes the vectors need at least (text: a digit and a space each)
    if opener is open and file.stat().st_size < smallest:
        raise HashbenchError(f"tags.word2vec: {file} header claims {count} vectors of {dim} dimensions, which need "
                             f"at least {smallest} bytes; the file has {file.stat().st_size} (truncated or not "
                             f"word2vec)")


# ------------------------------------------------------------------------------------------ processing
@dataclass
class TagResult:
    """Merged tags (names[i] is the most frequent member of group i), their members, unit embeddings (T, D),
    the (N, T) uint8 targets (CSR), dropped raw tags with the reason, and counts for the report."""

    names: list[str]
    members: list[list[str]]
    embeddings: np.ndarray
    targets: sp.csr_matrix
    dropped: dict[str, str]
    counts: dict = field(default_factory=dict)
    member_counts: list[list[int]] = field(default_factory=list)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def tag_graph(unit: np.ndarray, tau: float, block: int = 2048) -> sp.csr_matrix:
    """Adjacency a_ij = 1[u_i . u_j >= tau] with self-loops, as a sparse bool matrix (rows in blocks)."""
    t = len(unit)
    parts = []
    for start in range(0, t, block):
        sim = unit[start:start + block] @ unit.T
        hit = sim >= tau
        hit[np.arange(len(hit)), np.arange(start, start + len(hit))] = True
        parts.append(sp.csr_matrix(hit))
    if not parts:
        return sp.csr_matrix((0, 0), dtype=bool)
    return sp.vstack(parts, format="csr")


def enhance(unit: np.ndarray, graph: sp.csr_matrix) -> np.ndarray:
    """t~_i = mean of the unit vectors of i's graph neighbours (self included), L2-normalised."""
    a = graph.astype(np.float32)
    degree = np.asarray(a.sum(axis=1)).ravel()
    return l2_normalize((a @ unit) / degree[:, None])


def merge_clusters(vectors: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    """DBSCAN labels (-1 = noise) in cosine distance over unit vectors."""
    from sklearn.cluster import DBSCAN

    if len(vectors) == 0:
        return np.zeros(0, dtype=np.int64)
    return DBSCAN(eps=eps, min_samples=min_samples, metric="cosine", algorithm="brute").fit(vectors).labels_


def process_tags(x: sp.csr_matrix, vocab: list[str], p: dict, vectors: Vectors | None = None,
                 sentences: list[list[str]] | None = None) -> TagResult:
    """Frequency filter -> word vectors -> (graph, enhancement, DBSCAN merge unless process is false) -> targets.

    `x`: (N, V) sparse 0/1 tags of the training images over `vocab`. `vectors`: given (pretrained, tests,
    benchmarks) or None to load/train them as `p["word2vec"]` says (corpus training uses `sentences`, the images'
    tag lists in the user's order, or x's rows when None).
    """
    x = sp.csr_matrix(x)
    n, v = x.shape
    if v != len(vocab):
        raise HashbenchError(f"tags: the matrix has {v} columns for {len(vocab)} vocabulary entries")
    x.data = np.ones_like(x.data, dtype=np.uint8)
    freq = np.asarray((x > 0).sum(axis=0)).ravel().astype(np.int64)
    dropped: dict[str, str] = {}
    used = freq > 0  # the vocab may also hold tags that only non-training images use: not part of the input
    keep = freq >= p["min_count"]
    for j in np.flatnonzero(used & ~keep):
        dropped[vocab[j]] = "rare"
    # kept raw tags in a stable order: descending frequency, then name
    kept = sorted(np.flatnonzero(keep).tolist(), key=lambda j: (-freq[j], vocab[j]))
    kept_words = [vocab[j] for j in kept]

    if vectors is None:
        if p["word2vec"] == "corpus":
            keep_set = set(kept_words)
            if sentences is None:
                sentences = [[vocab[j] for j in x.indices[x.indptr[i]:x.indptr[i + 1]]] for i in range(n)]
            vectors = train_corpus_word2vec([[w for w in s if w in keep_set] for s in sentences], p)
        else:
            vectors = load_pretrained(p["word2vec"], p["binary"], p["limit"])
    found, raw_vectors = vectors.lookup(kept_words)
    for w, ok in zip(kept_words, found):
        if not ok:
            dropped[w] = "oov"
    cols = np.asarray(kept, dtype=np.int64)[found]
    words = [w for w, ok in zip(kept_words, found) if ok]
    unit = l2_normalize(raw_vectors) if len(words) else np.zeros((0, vectors.dim), np.float32)

    if p["process"] and len(words):
        graph = tag_graph(unit, p["tau"])
        enhanced = enhance(unit, graph)
        labels = merge_clusters(enhanced, p["eps"], p["min_samples"])
        edges = int(graph.nnz - len(words))
    else:
        enhanced, labels, edges = unit, np.arange(len(words)), 0
    for w, lab in zip(words, labels):
        if lab < 0:
            dropped[w] = "dbscan_noise"
    # groups in order of their most frequent member (kept order is by frequency already)
    order: dict[int, int] = {}
    for lab in labels:
        if lab >= 0 and lab not in order:
            order[int(lab)] = len(order)
    t = len(order)
    group_of = np.array([order.get(int(lab), -1) for lab in labels], dtype=np.int64)
    members: list[list[str]] = [[] for _ in range(t)]
    member_counts: list[list[int]] = [[] for _ in range(t)]
    for w, c, g in zip(words, cols, group_of):
        if g >= 0:
            members[g].append(w)
            member_counts[g].append(int(freq[c]))
    dim = unit.shape[1]
    embeddings = np.zeros((t, dim), np.float32)
    if t:
        np.add.at(embeddings, group_of[group_of >= 0], enhanced[group_of >= 0])
        embeddings = l2_normalize(embeddings)
    # raw column -> merged tag, then targets = OR over members
    live = group_of >= 0
    assign = sp.csr_matrix((np.ones(int(live.sum()), np.int32), (cols[live], group_of[live])), shape=(v, t))
    targets = (x.astype(np.int32) @ assign).tocsr()
    targets.data = np.ones_like(targets.data, dtype=np.uint8)
    targets.eliminate_zeros()
    reasons = list(dropped.values())
    counts = {
        "images": int(n), "raw_tags": int(used.sum()), "kept_raw_tags": len(words),
        "dropped_rare": reasons.count("rare"), "dropped_oov": reasons.count("oov"),
        "dropped_dbscan_noise": reasons.count("dbscan_noise"), "merged_tags": t,
        "merged_groups_with_2_or_more": sum(len(m) >= 2 for m in members), "graph_edges": edges,
        "embedding_dim": int(dim), "images_without_targets": int(n - np.count_nonzero(np.diff(targets.indptr))),
        "mean_targets_per_image": round(float(targets.nnz / max(n, 1)), 4),
    }
    return TagResult([m[0] for m in members], members, embeddings, targets, dropped, counts,
                     member_counts)


# ------------------------------------------------------------------------------------------------- purity
def tag_meaning(tag: str, truth: dict) -> str:
    """The generator's meaning of a tag: "digit:d" (synonym or companion), "theme:k", "noise" or "unknown"."""
    if tag in truth.get("synonyms", {}):
        return f"digit:{int(truth['synonyms'][tag])}"
    if tag in truth.get("companions", {}):
        return f"digit:{int(truth['companions'][tag])}"
    if tag in truth.get("themes", {}):
        return f"theme:{int(truth['themes'][tag])}"
    if tag in set(truth.get("noise", [])):
        return "noise"
    return "unknown"


def purity_report(members: list[list[str]], dropped: dict[str, str], truth: dict) -> dict:
    """Merge quality against the generator's ground truth (tag_truth.json).

    Every tag has one meaning: digit d (its synonyms and its companion word), theme k (theme words), noise (camera
    and Flickr words) or unknown. A merged group with >= 2 tags is
    - pure (the acceptance figure): all its members have the same meaning -- so a digit group must not contain
      another digit's tags nor any theme/noise word, and noise words may only merge with noise words;
    - digit-pure (a looser figure): its digit-meaning members all name the same digit (theme/noise members are
      ignored; a group without digit members counts as digit-pure).
    For each digit: the number of merged groups (singletons included) its kept synonyms ended up in, and how many
    of its synonyms were dropped.
    """
    meanings = [[tag_meaning(t, truth) for t in m] for m in members]
    multi = [k for k, m in enumerate(members) if len(m) >= 2]
    pure = [k for k in multi if len(set(meanings[k])) == 1]
    digit_pure = [k for k in multi if len({s for s in meanings[k] if s.startswith("digit:")}) <= 1]
    impure = [{"members": members[k], "meanings": meanings[k]} for k in multi if k not in set(pure)]
    synonyms = truth.get("synonyms", {})
    digits = sorted({int(d) for d in synonyms.values()})
    groups_per_digit, dropped_per_digit = {}, {}
    for d in digits:
        syn = {t for t, dd in synonyms.items() if int(dd) == d}
        groups_per_digit[str(d)] = sum(1 for m in members if syn & set(m))
        dropped_per_digit[str(d)] = sorted(t for t in syn if t in dropped)
    return {
        "definition": ("pure: all members of a merged group with >= 2 tags have the same generator meaning (digit d "
                       "= its synonyms and companion; theme k; noise); digit_pure: the digit-meaning members name "
                       "one digit, other tags ignored; groups_per_digit: merged groups holding a digit's kept "
                       "synonyms"),
        "groups_with_2_or_more": len(multi),
        "pure_groups": len(pure),
        "pure_share": round(len(pure) / len(multi), 4) if multi else 1.0,
        "digit_pure_share": round(len(digit_pure) / len(multi), 4) if multi else 1.0,
        "groups_per_digit": groups_per_digit,
        "max_groups_per_digit": max(groups_per_digit.values(), default=0),
        "dropped_synonyms_per_digit": dropped_per_digit,
        "impure_groups": impure,
    }


# ---------------------------------------------------------------------------------------------- outputs
def _h5_write(path: Path, arrays: dict[str, np.ndarray], attrs: dict) -> None:
    with atomic_path(path) as tmp, h5py.File(tmp, "w", libver=("earliest", "v110"), track_order=False) as f:
        for key, value in attrs.items():
            f.attrs[key] = value
        for key, arr in arrays.items():
            kwargs = {}
            if arr.ndim == 2 and arr.size > (1 << 20):
                kwargs = {"chunks": (min(arr.shape[0], 4096), max(arr.shape[1], 1)), "compression": "gzip",
                          "compression_opts": 4, "shuffle": False}
            f.create_dataset(key, data=arr, track_times=False, **kwargs)


def write_outputs(folder, result: TagResult | None, train_index: np.ndarray, report: dict) -> None:
    """``vocab.json`` [{tag, members, counts}] in target order; ``merge_map.json`` {"merged": {tag: [raw tags]},
    "dropped": {raw tag: rare|oov|dbscan_noise}}; ``tags.h5`` with ``embeddings`` float32 (T, D), ``targets`` uint8
    (N_train, T) in split-train order and ``train_index`` int64; ``report.json``. `result` None: no tags."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    train_index = np.asarray(train_index, dtype=np.int64)
    if result is None:
        vocab, merged, dropped = [], {}, {}
        embeddings = np.zeros((0, 0), np.float32)
        targets = np.zeros((len(train_index), 0), np.uint8)
    else:
        vocab = [{"tag": name, "members": m, "counts": c}
                 for name, m, c in zip(result.names, result.members, result.member_counts)]
        merged = {name: m for name, m in zip(result.names, result.members)}
        dropped = dict(sorted(result.dropped.items()))
        embeddings = result.embeddings.astype(np.float32)
        targets = result.targets.toarray().astype(np.uint8)
    atomic_write_json(folder / "vocab.json", vocab)
    atomic_write_json(folder / "merge_map.json", {"merged": merged, "dropped": dropped})
    _h5_write(folder / "tags.h5", {"embeddings": embeddings, "targets": targets, "train_index": train_index},
              {"n_tags": int(embeddings.shape[0]), "dim": int(embeddings.shape[1]), "has_tags": result is not None})
    atomic_write_json(folder / "report.json", report)


def load_targets(folder, train_index) -> tuple[np.ndarray, np.ndarray]:
    """(targets float32 (N_train, T), embeddings float32 (T, D)) from the tags stage, checked against the split."""
    path = Path(folder) / "tags.h5"
    if not path.is_file():
        raise HashbenchError(f"{path}: not found; run `dvc repro tags` (the tags stage) first")
    with h5py.File(path, "r") as f:
        if not bool(f.attrs.get("has_tags", True)):
            raise HashbenchError(f"{path}: the dataset has no tags; use a dataset with tags (e.g. mnist5k-tags)")
        stored = f["train_index"][()]
        targets = f["targets"][()].astype(np.float32)
        embeddings = f["embeddings"][()].astype(np.float32)
    train_index = np.asarray(train_index, dtype=np.int64)
    if stored.shape != train_index.shape or not np.array_equal(stored, train_index):
        raise HashbenchError(f"{path}: its train_index differs from the split's train indices; rerun the tags stage "
                             f"(`dvc repro tags`)")
    return targets, embeddings


# ------------------------------------------------------------------------------------------------ stage
def run(raw_folder, split_folder, out_folder, p: dict) -> dict:
    """The tags stage: read the training images' tags, process them, write the outputs; return the report."""
    from .splits import load_split

    start = time.perf_counter()
    train_index = np.asarray(load_split(split_folder)["train"], dtype=np.int64)
    with open_dataset(raw_folder) as ds:
        name = ds.name
        if "tags" not in ds.modalities:
            report = {"dataset": name, "has_tags": False,
                      "note": f"dataset {name} has no tags; the outputs are empty and no method may need tags",
                      "counts": {"images": int(len(train_index)), "raw_tags": 0, "kept_raw_tags": 0,
                                 "dropped_rare": 0, "dropped_oov": 0, "merged_tags": 0}}
            write_outputs(out_folder, None, train_index, report)
            return report
        vocab, x = ds.tag_matrix(train_index)
        sentences = ds.tags(train_index) if p["word2vec"] == "corpus" else None
    result = process_tags(x, vocab, p, sentences=sentences)
    report = {"dataset": name, "has_tags": True, "params": p, "counts": result.counts}
    truth_path = Path(raw_folder) / "tag_truth.json"
    if truth_path.is_file():
        truth = json.loads(truth_path.read_text(encoding="utf-8"))
        report["purity"] = purity_report(result.members, result.dropped, truth)
    write_outputs(out_folder, result, train_index, report)
    print(f"tags: {result.counts['raw_tags']} raw tags -> {result.counts['merged_tags']} targets "
          f"in {time.perf_counter() - start:.1f} s")
    return report
