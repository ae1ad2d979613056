"""``tags.source: official``: WSDHQ's own processed tags instead of our reconstruction of its tag stage.

The download stage stores them from the authors' ``data.tar.gz`` (``split: {protocol: lists, format: wsdhq}``, see
:mod:`hashbench.datasets.wsdhq_release`): the raw 0/1 tag rows of ``train_tag.txt`` (in ``train_img.txt`` order,
whose items are ``list_train``), the merge map (merged tag -> raw tag columns, in the pickle's dict order) and
``FinalTagEmbs.txt``. A merged tag's target is 1 when any of its raw tags is (as the official ``merge_labels``); its
embedding is the official one, L2-normalised (the official loss normalises it too).
"""
from __future__ import annotations

import json

import numpy as np
import scipy.sparse as sp

from .data import open_dataset
from .errors import HashbenchError
from .splits import load_split
from .tags import TagResult, l2_normalize, write_outputs

HINT = ("tags.source: official needs WSDHQ's release in data/raw: set the dataset's split to {protocol: lists, "
        "format: wsdhq}, place data.tar.gz in data/manual/<dataset>/ and rerun the download stage")


def official_result(ds, train_index: np.ndarray) -> TagResult:
    """The official targets of the split's training items (which must be WSDHQ's train_img.txt) as a TagResult."""
    try:
        order = ds.array("list_train")
        indptr, indices = ds.array("official_tag_indptr"), ds.array("official_tag_indices")
        embeddings = ds.array("official_tag_embeddings").astype(np.float32)
        info = json.loads((ds.folder / "official_tags.json").read_text(encoding="utf-8"))
    except (HashbenchError, OSError, ValueError):
        raise HashbenchError(HINT) from None
    n_raw, merged = int(info["n_raw"]), [list(cols) for cols in info["merged"]]
    row_of = {int(item): r for r, item in enumerate(order)}
    train_index = np.asarray(train_index, dtype=np.int64)
    outside = [int(i) for i in train_index if int(i) not in row_of]
    if outside or len(train_index) != len(order):
        raise HashbenchError(f"tags.source: official needs the split's training set to be WSDHQ's train_img.txt "
                             f"({len(order)} images; the split has {len(train_index)}, {len(outside)} not listed); "
                             f"use split.format: wsdhq")
    rows = sp.csr_matrix((np.ones(indices.size, np.uint8), indices, indptr), shape=(len(order), n_raw))
    x = rows[[row_of[int(i)] for i in train_index]]
    assign = sp.csr_matrix((np.ones(sum(map(len, merged)), np.int32),
                            ([c for cols in merged for c in cols], [k for k, cols in enumerate(merged) for _ in cols])),
                           shape=(n_raw, len(merged)))
    targets = (x.astype(np.int32) @ assign).tocsr()
    targets.data = np.ones_like(targets.data, dtype=np.uint8)
    targets.eliminate_zeros()
    vocab = info.get("vocab") or [f"tag{j}" for j in range(n_raw)]
    members = [[vocab[c] for c in cols] for cols in merged]
    freq = np.asarray(x.sum(axis=0)).ravel()
    counts = {"images": int(len(train_index)), "raw_tags": n_raw, "merged_tags": len(merged),
              "embedding_dim": int(embeddings.shape[1]) if embeddings.ndim == 2 else 0,
              "images_without_targets": int(len(train_index) - np.count_nonzero(np.diff(targets.indptr))),
              "mean_targets_per_image": round(float(targets.nnz / max(len(train_index), 1)), 4),
              "source": info.get("source", "WSDHQ data.tar.gz")}
    return TagResult([m[0] if m else f"merged{k}" for k, m in enumerate(members)], members, l2_normalize(embeddings),
                     targets, {}, counts, [[int(freq[c]) for c in cols] for cols in merged])


def run(raw_folder, split_folder, out_folder, p: dict) -> dict:
    """The tags stage with ``source: official``: the same outputs as :func:`hashbench.tags.run`."""
    train_index = np.asarray(load_split(split_folder)["train"], dtype=np.int64)
    with open_dataset(raw_folder) as ds:
        result = official_result(ds, train_index)
        report = {"dataset": ds.name, "has_tags": True, "source": "official", "params": p, "counts": result.counts}
    write_outputs(out_folder, result, train_index, report)
    return report
