"""Speed of the tags stage's processing at NUS-WIDE scale, after the word vectors exist.

Synthetic input of NUS-WIDE's size and shape: 269,648 training images x 5,018 raw tags, sparse, about 8 tags per
image drawn with Zipf-like frequencies (p ~ 1/rank), and 300-d word vectors with synonym structure (900 concepts,
each tag a noisy copy of its concept's vector). Timed: hashbench.tags.process_tags (frequency filter, lookup, tag
graph, enhancement, DBSCAN merge, merged multi-hot targets) and, separately, writing the outputs. Target: <= 60 s
on 2 CPU cores for the processing.

    python benchmarks/tags_speed.py [--images N] [--tags T]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import scipy.sparse as sp

from hashbench.tags import Vectors, process_tags, validate_params, write_outputs

TARGET_S = 60.0


def synthetic(n_images: int, n_tags: int, dim: int = 300, per_image: float = 8.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    vocab = [f"tag{j:05d}" for j in range(n_tags)]
    p = 1.0 / np.arange(1, n_tags + 1)
    p /= p.sum()
    counts = np.maximum(1, rng.poisson(per_image, n_images))
    rows = np.repeat(np.arange(n_images), counts)
    cols = rng.choice(n_tags, size=rows.size, p=p)
    x = sp.csr_matrix((np.ones(rows.size, np.uint8), (rows, cols)), shape=(n_images, n_tags))
    x.sum_duplicates()
    x.data[:] = 1
    concepts = rng.standard_normal((900, dim)).astype(np.float32)
    concept_of = rng.integers(0, 900, n_tags)
    vectors = concepts[concept_of] + 0.25 * rng.standard_normal((n_tags, dim)).astype(np.float32)
    return x, vocab, Vectors(vocab, vectors)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=269_648)
    ap.add_argument("--tags", type=int, default=5_018)
    args = ap.parse_args()
    t0 = time.perf_counter()
    x, vocab, vectors = synthetic(args.images, args.tags)
    print(f"synthetic input: {x.shape[0]:,} images x {x.shape[1]:,} tags, {x.nnz / x.shape[0]:.2f} tags/image, "
          f"300-d vectors ({time.perf_counter() - t0:.1f} s to generate, not timed)")
    params = validate_params(None)
    t1 = time.perf_counter()
    result = process_tags(x, vocab, params, vectors=vectors)
    seconds = time.perf_counter() - t1
    c = result.counts
    print(f"processing: {seconds:.1f} s -> {c['kept_raw_tags']:,} kept, {c['dropped_rare']:,} rare, "
          f"{c['merged_tags']:,} merged tags ({c['merged_groups_with_2_or_more']:,} groups with >= 2), "
          f"{c['mean_targets_per_image']:.2f} targets/image")
    with tempfile.TemporaryDirectory() as tmp:
        t2 = time.perf_counter()
        write_outputs(tmp, result, np.arange(x.shape[0]), {"counts": c})
        print(f"writing outputs: {time.perf_counter() - t2:.1f} s (not part of the target)")
    print(f"tags processing at NUS-WIDE scale: {seconds:.1f} s; ratio to the {TARGET_S:.0f} s target: "
          f"{seconds / TARGET_S:.2f}")


if __name__ == "__main__":
    main()
