"""Split protocols: counts, rules, determinism, broken splits, files; the quota sampler on real NUS-WIDE labels."""
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import shared_data_dir

from hashbench.data import open_dataset, write_dataset
from hashbench.datasets.nuswide import read_concepts as read_nuswide_concepts
from hashbench.datasets.nuswide import read_groundtruth as read_nuswide_groundtruth
from hashbench.embedded import EMBEDDED
from hashbench.errors import HashbenchError
from hashbench.splits import check_split, load_split, make_split, quota_sample, save_split, validate_protocol

SHARED = shared_data_dir()


@pytest.fixture
def mnist5k(mnist5k):
    """The dataset of conftest's session-wide (dataset, split) pair: the splits here are made by each test."""
    return mnist5k[0]


@pytest.fixture
def mnist5k_tags(mnist5k_tags):
    return mnist5k_tags[0]


@pytest.fixture(scope="module")
def multilabel(tmp_path_factory):
    """A synthetic multi-label set: 3,000 items, 6 classes of unequal frequency."""
    rng = np.random.default_rng(5)
    labels = (rng.random((3000, 6)) < np.array([0.5, 0.3, 0.2, 0.1, 0.08, 0.05])).astype(np.uint8)
    labels[labels.sum(axis=1) == 0, 0] = 1
    folder = tmp_path_factory.mktemp("ml")
    write_dataset(folder, name="toyml", labels=labels, class_names=list("abcdef"))
    with open_dataset(folder) as ds:
        yield ds


def test_mnist5k_protocol(mnist5k):
    proto = EMBEDDED["mnist5k"]["split"]
    split = make_split(mnist5k, proto, EMBEDDED["mnist5k"]["seed"])
    assert {k: v.size for k, v in split.items()} == {"query": 500, "database": 4500, "train": 1000,
                                                    "labeled": 1000, "unlabeled": 3500}
    labels = mnist5k.labels()
    assert labels[split["query"]].sum(axis=0).tolist() == [50] * 10
    assert labels[split["train"]].sum(axis=0).tolist() == [100] * 10
    for v in split.values():
        assert v.dtype == np.int64 and np.all(np.diff(v) > 0)
    rules = check_split(split, mnist5k, proto)
    assert "query ∩ database = ∅" in rules and "train ⊂ database" in rules
    assert "labeled ∪ unlabeled = database, disjoint" in rules and "labeled = train" in rules


def test_determinism(mnist5k):
    proto = EMBEDDED["mnist5k"]["split"]
    a, b, c = make_split(mnist5k, proto, 0), make_split(mnist5k, proto, 0), make_split(mnist5k, proto, 1)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["query"], c["query"])


def test_train_outside_database(mnist5k):
    proto = {"protocol": "per_class", "query_per_class": 30, "train_per_class": 70, "train_in_database": False}
    split = make_split(mnist5k, proto, 3)
    assert (split["query"].size, split["train"].size, split["database"].size) == (300, 700, 4000)
    assert np.intersect1d(split["train"], split["database"]).size == 0
    assert "train ∩ database = ∅" in check_split(split, mnist5k, proto)


def test_partition_protocol(mnist5k_tags):
    proto = EMBEDDED["mnist5k-tags"]["split"]
    split = make_split(mnist5k_tags, proto, EMBEDDED["mnist5k-tags"]["seed"])
    part = mnist5k_tags.partition()
    np.testing.assert_array_equal(split["query"], np.flatnonzero(part == 1))
    np.testing.assert_array_equal(split["database"], np.flatnonzero(part == 0))
    assert split["train"].size == 2000 and np.isin(split["train"], split["database"]).all()
    assert "labeled" not in split
    check_split(split, mnist5k_tags, proto)
    whole = make_split(mnist5k_tags, {"protocol": "partition", "n_train": None}, 0)
    np.testing.assert_array_equal(whole["train"], whole["database"])
    with pytest.raises(HashbenchError, match=r"mnist5k-tags\.split\.n_train: 9000 is not allowed"):
        make_split(mnist5k_tags, {"protocol": "partition", "n_train": 9000}, 0)


def test_quota_protocol(multilabel):
    proto = {"protocol": "quota", "query_per_class": 20, "train_per_class": 60, "labeled_unlabeled": True}
    split = make_split(multilabel, proto, 0)
    labels = multilabel.labels()
    assert split["query"].size == 120 and split["train"].size == 360
    assert (labels[split["query"]].sum(axis=0) >= 20).all() and (labels[split["train"]].sum(axis=0) >= 60).all()
    assert split["database"].size == 3000 - 120
    check_split(split, multilabel, proto)
    rare = make_split(multilabel, {**proto, "class_order": "rarest_first"}, 0)
    check_split(rare, multilabel, {**proto, "class_order": "rarest_first"})
    with pytest.raises(HashbenchError, match=r"toyml\.split\.protocol: per_class is not allowed for multi-label"):
        make_split(multilabel, {"protocol": "per_class"}, 0)
    with pytest.raises(HashbenchError, match=r"class 'b' has only \d+ free items for a quota of 1000; lower"):
        make_split(multilabel, {"protocol": "quota", "query_per_class": 1000}, 0)
    with pytest.raises(HashbenchError, match=r"partition is not allowed for toyml"):
        make_split(multilabel, {"protocol": "partition"}, 0)


def test_quota_sample_single_label_is_exact():
    rng = np.random.default_rng(0)
    labels = np.eye(4, dtype=np.uint8)[np.repeat(np.arange(4), 25)]
    chosen = quota_sample(labels, 5, rng)
    assert labels[chosen].sum(axis=0).tolist() == [5] * 4
    avail = np.ones(100, bool)
    avail[chosen] = False
    again = quota_sample(labels, 5, rng, available=avail)
    assert np.intersect1d(chosen, again).size == 0
    short = quota_sample(labels, 30, rng, strict=False)
    assert short.size == 100


def _corrupt(split, key, fn):
    out = {k: v.copy() for k, v in split.items()}
    out[key] = fn(out[key])
    return out


@pytest.mark.parametrize("breaker, match", [
    (lambda s, ds: _corrupt(s, "database", lambda d: np.append(d, s["query"][0])), "query items are also in the database"),
    (lambda s, ds: _corrupt(s, "train", lambda t: np.append(t, s["query"][0])), "query items are also in train"),
    (lambda s, ds: _corrupt(s, "train", lambda t: np.append(t, t[0])), "train has duplicate indices"),
    (lambda s, ds: _corrupt(s, "query", lambda q: np.append(q, ds.n_items)), "query has indices outside"),
    (lambda s, ds: _corrupt(s, "query", lambda q: q[1:]), "covers 4999 of 5000"),
    (lambda s, ds: {k: v for k, v in s.items() if k != "unlabeled"}, "part 'unlabeled' is missing"),
    (lambda s, ds: _corrupt(s, "unlabeled", lambda u: u[1:]), "labeled ∪ unlabeled must equal the database"),
    (lambda s, ds: _corrupt(s, "query", lambda q: q.astype(float)), "1-D integer index array"),
    (lambda s, ds: {**s, "extra": s["query"]}, "part 'extra' is not allowed"),
])
def test_broken_split_raises(mnist5k, breaker, match):
    proto = EMBEDDED["mnist5k"]["split"]
    split = make_split(mnist5k, proto, 0)
    with pytest.raises(HashbenchError, match=match) as err:
        check_split(breaker(split, mnist5k), mnist5k, proto)
    assert "\n" not in str(err.value) and str(err.value).startswith("mnist5k.split: ")


def test_broken_counts_and_train_outside(mnist5k, mnist5k_tags):
    proto = EMBEDDED["mnist5k"]["split"]
    split = make_split(mnist5k, proto, 0)
    # swap one query item of class 0 with a database item of class 1: sizes stay, per-class counts break
    labels = mnist5k.labels().argmax(axis=1)
    qi = split["query"][labels[split["query"]] == 0][0]
    di = np.setdiff1d(split["database"], split["train"])
    di = di[labels[di] == 1][0]
    q = np.sort(np.append(split["query"][split["query"] != qi], di))
    d = np.sort(np.append(split["database"][split["database"] != di], qi))
    bad = {**split, "query": q, "database": d, "unlabeled": np.setdiff1d(d, split["train"])}
    with pytest.raises(HashbenchError, match="query has 49 items of class '0'; the protocol asks exactly 50"):
        check_split(bad, mnist5k, proto)
    tproto = EMBEDDED["mnist5k-tags"]["split"]
    tsplit = make_split(mnist5k_tags, tproto, 0)
    moved = tsplit["train"][0]
    bad = {**tsplit, "database": tsplit["database"][tsplit["database"] != moved]}
    with pytest.raises(HashbenchError, match="train items are not in the database"):
        check_split(bad, mnist5k_tags, tproto)
    short = {**tsplit, "train": tsplit["train"][1:]}
    with pytest.raises(HashbenchError, match="train has 1999 items; the protocol asks 2000"):
        check_split(short, mnist5k_tags, tproto)


def test_save_load(tmp_path, mnist5k):
    proto = EMBEDDED["mnist5k"]["split"]
    split = make_split(mnist5k, proto, 0)
    info = save_split(tmp_path, split, mnist5k, proto, seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["split.json", "split.npz"]
    meta = json.loads((tmp_path / "split.json").read_text())
    assert meta == json.loads(json.dumps(info))
    assert meta["protocol"] == "per_class" and meta["counts"]["query"] == 500 and meta["seed"] == 0
    assert set(meta["sha256"]) == set(split) and meta["rules_checked"]
    loaded = load_split(tmp_path)
    for key in split:
        np.testing.assert_array_equal(loaded[key], split[key])
    with np.load(tmp_path / "split.npz", allow_pickle=False) as z:
        assert sorted(z.files) == sorted(split)
    np.savez(tmp_path / "split.npz", **{**split, "query": split["query"][::-1]})  # tampered
    with pytest.raises(HashbenchError, match="does not match the sha256"):
        load_split(tmp_path)
    with pytest.raises(HashbenchError, match=r"split file missing; run `dvc repro split`"):
        load_split(tmp_path / "nowhere")
    bad = {**split, "train": split["query"]}
    with pytest.raises(HashbenchError):
        save_split(tmp_path / "b", bad, mnist5k, proto)
    assert not (tmp_path / "b" / "split.npz").exists()


@pytest.mark.parametrize("block, match", [
    ({"protocol": "bogus"}, r"x\.protocol: 'bogus' is not allowed; use one of per_class, quota, partition, random"),
    ({"protocol": "quota", "query_per_class": -1}, r"x\.query_per_class: -1 is not allowed"),
    ({"protocol": "quota", "class_order": "abc"}, r"x\.class_order: 'abc' is not allowed; use one of columns"),
    ("quota", r"x: must be a mapping"),
])
def test_protocol_validation(block, match):
    with pytest.raises(HashbenchError, match=match):
        validate_protocol(block, where="x")


def test_labeled_outside_the_database_makes_the_database_unlabeled(mnist5k):
    """GPQ's CIFAR-10 protocol: the labeled train images lie outside the database, which is all unlabeled."""
    proto = {**EMBEDDED["mnist5k"]["split"], "train_in_database": False, "labeled_unlabeled": True}
    split = make_split(mnist5k, proto, 0)
    np.testing.assert_array_equal(split["labeled"], split["train"])
    np.testing.assert_array_equal(split["unlabeled"], split["database"])
    assert "unlabeled = database" in check_split(split, mnist5k, proto)
    with pytest.raises(HashbenchError, match="unlabeled must equal the database"):
        check_split({**split, "unlabeled": split["database"][1:]}, mnist5k, proto)


def test_random_protocol(mnist5k):
    """DeepHash-pytorch mirflickr style: n_query, then n_train, from one seeded permutation."""
    proto = {"protocol": "random", "n_query": 100, "n_train": 300, "train_in_database": False}
    split = make_split(mnist5k, proto, 0)
    assert split["query"].size == 100 and split["train"].size == 300 and split["database"].size == 4600
    assert "|query| = 100, |train| = 300" in check_split(split, mnist5k, proto)
    again = make_split(mnist5k, proto, 0)
    assert all(np.array_equal(split[k], again[k]) for k in split)
    inside = make_split(mnist5k, {**proto, "train_in_database": True}, 0)
    np.testing.assert_array_equal(inside["train"], split["train"])
    assert inside["database"].size == 4900
    with pytest.raises(HashbenchError, match=r"train has 299 items; the protocol asks n_train = 300"):
        check_split({**split, "train": split["train"][1:], "database": np.union1d(split["database"],
                                                                                   split["train"][:1])}, mnist5k, proto)
    with pytest.raises(HashbenchError, match=r"mnist5k\.split\.n_train: 4950 is not allowed with n_query 100"):
        make_split(mnist5k, {**proto, "n_train": 4950}, 0)


def test_bad_seed(mnist5k):
    with pytest.raises(HashbenchError, match=r"mnist5k\.seed: -1 is not allowed"):
        make_split(mnist5k, EMBEDDED["mnist5k"]["split"], -1)


# ---------------------------------------------------------------------------------- real NUS-WIDE-21 labels
def _read_list(path: Path):
    names, rows = [], []
    for line in path.read_text().splitlines():
        parts = line.split()
        names.append(parts[0])
        rows.append([int(x) for x in parts[1:]])
    return names, np.array(rows, dtype=np.uint8)


NUS21 = ["sky", "clouds", "person", "water", "animal", "grass", "buildings", "window", "plants", "lake", "ocean",
         "road", "flowers", "sunset", "reflection", "rocks", "vehicle", "snow", "tree", "beach", "mountain"]
NUS_PROTO = {"protocol": "quota", "query_per_class": 100, "train_per_class": 500, "train_in_database": True}


def test_deephash_nuswide21_lists_satisfy_quota_rules(tmp_path):
    lists = SHARED / "nus-wide" / "deephash-pytorch-lists"
    if not (lists / "train.txt").is_file() or not (lists / "test.txt").is_file():
        pytest.skip(f"real NUS-WIDE-21 lists not found at {lists} (set HASHBENCH_SHARED to the shared data folder)")
    q_names, q_lab = _read_list(lists / "test.txt")
    t_names, t_lab = _read_list(lists / "train.txt")
    assert (q_lab.shape, t_lab.shape) == ((2100, 21), (10500, 21))
    assert not set(q_names) & set(t_names)
    write_dataset(tmp_path, name="nuswide21-lists", labels=np.vstack([q_lab, t_lab]), class_names=NUS21)
    with open_dataset(tmp_path) as ds:
        split = {"query": np.arange(2100), "train": np.arange(2100, 12600), "database": np.arange(2100, 12600)}
        rules = check_split(split, ds, NUS_PROTO)  # the published split obeys our quota rules
        assert any("at least query_per_class=100" in r for r in rules)


def test_quota_sampler_on_nuswide_groundtruth(tmp_path):
    gt, cl = SHARED / "nus-wide" / "Groundtruth.zip", SHARED / "nus-wide" / "ConceptsList.zip"
    if not gt.is_file() or not cl.is_file():
        pytest.skip(f"NUS-WIDE Groundtruth.zip / ConceptsList.zip not found under {gt.parent}")
    concepts = read_nuswide_concepts(cl)
    labels = read_nuswide_groundtruth(gt, concepts, "all")
    assert labels.shape == (269648, 81) and int(labels.any(axis=1).sum()) == 209347
    order = np.argsort(-labels.sum(axis=0), kind="stable")[:21]
    assert [concepts[j] for j in order] == NUS21
    sub = labels[:, order]
    sub = sub[sub.any(axis=1)]
    assert sub.shape[0] == 195834
    write_dataset(tmp_path, name="nuswide", labels=sub, class_names=NUS21)
    with open_dataset(tmp_path) as ds:
        split = make_split(ds, NUS_PROTO, 0)
        assert (split["query"].size, split["train"].size, split["database"].size) == (2100, 10500, 193734)
        check_split(split, ds, NUS_PROTO)
        again = make_split(ds, NUS_PROTO, 0)
        np.testing.assert_array_equal(split["train"], again["train"])
