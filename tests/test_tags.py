"""The tags stage library on small synthetic tags: word vectors, filtering, merging, outputs, determinism."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.sparse as sp

from hashbench.data import write_dataset
from hashbench.errors import HashbenchError
from hashbench.tags import Vectors, load_pretrained, load_targets, process_tags, purity_report, run, validate_params

ROOT = Path(__file__).resolve().parents[1]
CONCEPTS = [["cat", "kitty", "Cat"], ["dog", "puppy", "Dog"], ["car", "auto", "Car"]]
NOISE = ["nikon", "canon", "photo"]
TRUTH = {"synonyms": {w: d for d, ws in enumerate(CONCEPTS) for w in ws}, "companions": {}, "themes": {},
         "noise": NOISE}


def synthetic_tags(n=240, seed=0):
    """Per image 1-2 concepts, one synonym each, 1 noise word; plus one rare tag."""
    rng = np.random.default_rng(seed)
    rows, labels = [], np.zeros((n, 3), np.uint8)
    for i in range(n):
        cs = rng.choice(3, int(rng.integers(1, 3)), replace=False)
        row = [CONCEPTS[c][int(rng.integers(3))] for c in cs]
        labels[i, cs] = 1
        row.append(NOISE[int(rng.integers(3))])
        rows.append(row)
    rows[100].append("veryrare")
    return rows, labels


def write_folders(tmp_path, with_tags=True):
    rows, labels = synthetic_tags()
    n = len(rows)
    raw, split = tmp_path / "raw", tmp_path / "split"
    write_dataset(raw, name="toy", labels=labels, class_names=["a", "b", "c"],
                  images=np.zeros((n, 4, 4, 1), np.uint8), tags=rows if with_tags else None,
                  extra_files={"tag_truth.json": TRUTH})
    split.mkdir()
    idx = np.arange(n, dtype=np.int64)
    np.savez(split / "split.npz", query=idx[:40], database=idx[40:], train=idx[40:])
    return raw, split


def hand_vectors():
    """Concept words near one axis each (with small offsets), noise words on their own axes."""
    words, vecs = [], []
    for c, ws in enumerate(CONCEPTS):
        for k, w in enumerate(ws):
            v = np.zeros(8, np.float32)
            v[c] = 1.0
            v[4 + k % 2] = 0.05 * (k + 1)
            words.append(w)
            vecs.append(v)
    for k, w in enumerate(NOISE):
        v = np.zeros(8, np.float32)
        v[3 + 3 * (k > 0) + (k > 1)] = 1.0  # one axis each (3, 6, 7)
        words.append(w)
        vecs.append(v)
    return Vectors(words, np.stack(vecs))


def test_process_merges_synonyms_and_drops_rare_and_oov():
    rows, _ = synthetic_tags()
    rows[1].append("unknownword")
    rows[2].append("unknownword")
    vocab = sorted({t for r in rows for t in r})
    pos = {t: j for j, t in enumerate(vocab)}
    x = sp.csr_matrix((np.ones(sum(map(len, rows)), np.uint8),
                       ([i for i, r in enumerate(rows) for _ in r], [pos[t] for r in rows for t in r])),
                      shape=(len(rows), len(vocab)))
    p = validate_params({"min_count": 2, "tau": 0.9, "eps": 0.05})
    res = process_tags(x, vocab, p, vectors=hand_vectors())
    assert res.dropped == {"veryrare": "rare", "unknownword": "oov"}
    assert sorted(sorted(m) for m in res.members) == sorted(
        [sorted(c) for c in CONCEPTS] + [["nikon"], ["canon"], ["photo"]])
    assert res.embeddings.shape == (6, 8)
    np.testing.assert_allclose(np.linalg.norm(res.embeddings, axis=1), 1.0, rtol=1e-5)
    # targets: OR over members, one row per image
    dense = res.targets.toarray()
    for i, r in enumerate(rows):
        want = {k for k, m in enumerate(res.members) if set(m) & set(r)}
        assert set(np.flatnonzero(dense[i])) == want
    pur = purity_report(res.members, res.dropped, TRUTH)
    assert pur["pure_share"] == 1.0 and pur["max_groups_per_digit"] == 1
    # the ablation: every kept raw tag is its own target
    raw = process_tags(x, vocab, {**p, "process": False}, vectors=hand_vectors())
    assert len(raw.members) == 12 and all(len(m) == 1 for m in raw.members)


def test_purity_definition():
    members = [["cat", "kitty"], ["dog", "nikon"], ["car"], ["nikon", "canon"], ["auto", "Car"]]
    pur = purity_report(members, {}, TRUTH)
    assert pur["groups_with_2_or_more"] == 4
    assert pur["pure_groups"] == 3  # dog+nikon mixes a digit meaning with noise
    assert pur["digit_pure_share"] == 1.0
    assert pur["groups_per_digit"] == {"0": 1, "1": 1, "2": 2}


def test_load_small_binary_word2vec(tmp_path):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=4)
    kv.add_vectors(["cat", "dog", "Car"], np.arange(12, dtype=np.float32).reshape(3, 4))
    path = tmp_path / "tiny.bin"
    kv.save_word2vec_format(str(path), binary=True)
    vec = load_pretrained(str(path))  # binary guessed from ".bin"
    found, mat = vec.lookup(["dog", "nope", "Car"])
    assert found.tolist() == [True, False, True]
    np.testing.assert_array_equal(mat, [[4, 5, 6, 7], [8, 9, 10, 11]])
    with pytest.raises(HashbenchError, match="binary"):
        load_pretrained(str(path), binary=False)


def test_missing_word2vec_file_is_one_line_error(tmp_path):
    raw, split = write_folders(tmp_path)
    p = validate_params({"word2vec": str(tmp_path / "GoogleNews-vectors-negative300.bin.gz")})
    with pytest.raises(HashbenchError) as err:
        run(raw, split, tmp_path / "tags", p)
    msg = str(err.value)
    assert "\n" not in msg and "GoogleNews-vectors-negative300.bin.gz" in msg and "tags.word2vec" in msg


def test_bad_param_is_one_line_error():
    with pytest.raises(HashbenchError, match=r"tags\.eps"):
        validate_params({"eps": 0})
    with pytest.raises(HashbenchError, match=r"tags\.nope: unknown key"):
        validate_params({"nope": 1})


def test_stage_outputs_and_load_targets(tmp_path):
    raw, split = write_folders(tmp_path)
    p = validate_params({"min_count": 2, "vector_size": 16, "w2v_epochs": 5})
    report = run(raw, split, tmp_path / "tags", p)
    out = tmp_path / "tags"
    assert report["counts"]["raw_tags"] == 13 and report["counts"]["dropped_rare"] == 1
    assert "purity" in report
    merge = json.loads((out / "merge_map.json").read_text())
    assert merge["dropped"] == {"veryrare": "rare"}
    vocab = json.loads((out / "vocab.json").read_text())
    assert sorted(t for v in vocab for t in v["members"]) == sorted(
        [w for c in CONCEPTS for w in c] + NOISE)
    train = np.arange(40, 240)
    targets, emb = load_targets(out, train)
    assert targets.dtype == np.float32 and targets.shape == (200, len(vocab))
    assert emb.shape == (len(vocab), 16)
    with pytest.raises(HashbenchError, match="train_index"):
        load_targets(out, train[::-1])


def test_dataset_without_tags_gives_empty_output(tmp_path):
    raw, split = write_folders(tmp_path, with_tags=False)
    report = run(raw, split, tmp_path / "tags", validate_params(None))
    assert report["has_tags"] is False and "no tags" in report["note"]
    with h5py.File(tmp_path / "tags" / "tags.h5") as f:
        assert f["targets"].shape == (200, 0) and f["embeddings"].shape == (0, 0)
    with pytest.raises(HashbenchError, match="no tags"):
        load_targets(tmp_path / "tags", np.arange(40, 240))


def test_stage_is_deterministic_across_processes(tmp_path):
    """Same seed -> byte-identical outputs, also under different PYTHONHASHSEED (gensim's hash is replaced)."""
    raw, split = write_folders(tmp_path)
    code = ("import sys; from hashbench.tags import run, validate_params; "
            "run(sys.argv[1], sys.argv[2], sys.argv[3], validate_params({'min_count': 2, 'vector_size': 16, "
            "'w2v_epochs': 5, 'seed': 3}))")
    outs = []
    for hashseed in ("1", "2"):
        out = tmp_path / f"tags{hashseed}"
        env = {**os.environ, "PYTHONHASHSEED": hashseed, "PYTHONPATH": str(ROOT / "src")}
        subprocess.run([sys.executable, "-c", code, str(raw), str(split), str(out)], check=True, env=env,
                       capture_output=True)
        outs.append(out)
    for name in ("vocab.json", "merge_map.json", "tags.h5", "report.json"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
