"""The on-disk dataset format: write_dataset / open_dataset round trips, atomicity, errors."""
import json

import h5py
import numpy as np
import pytest

from hashbench.data import Dataset, file_md5, open_dataset, write_dataset
from hashbench.errors import HashbenchError


def _toy(n=40, c=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.eye(c, dtype=np.uint8)[rng.integers(0, c, n)]
    images = rng.integers(0, 256, (n, 6, 5, 1), dtype=np.uint8)
    return labels, images


def test_round_trip_all_modalities(tmp_path):
    labels, images = _toy()
    multi = labels.copy()
    multi[::3, 0] = 1
    tags = [["b", "a", "b"] if i % 2 else ["zz"] for i in range(40)]  # duplicate "b" is dropped
    text = np.arange(40 * 3, dtype=np.float32).reshape(40, 3)
    part = (np.arange(40) % 4 == 0).astype(np.uint8)
    src = np.arange(160, dtype=np.int32).reshape(40, 4)
    man = write_dataset(tmp_path, name="toy", labels=multi, class_names=["x", "y", "z"], images=images, tags=tags,
                        text=text, partition=part, extra_arrays={"source_ids": src},
                        extra_files={"truth.json": {"a": 1}}, extra_manifest={"source": "unit test"})
    assert man["n_items"] == 40 and man["n_classes"] == 3 and man["modalities"] == ["image", "tags", "text"]
    assert man["image_shape"] == [6, 5, 1] and man["source"] == "unit test"
    assert man["files"]["dataset.h5"]["md5"] == file_md5(tmp_path / "dataset.h5")
    assert json.loads((tmp_path / "manifest.json").read_text()) == man
    assert json.loads((tmp_path / "truth.json").read_text()) == {"a": 1}
    with open_dataset(tmp_path, verify=True) as ds:
        assert isinstance(ds, Dataset)
        assert (ds.name, ds.n_items, ds.n_classes, ds.class_names) == ("toy", 40, 3, ["x", "y", "z"])
        assert ds.modalities == {"image", "tags", "text"} and not ds.single_label and ds.text_from_tags
        np.testing.assert_array_equal(ds.labels(), multi)
        idx = np.array([7, 2, 7, 39, 0])  # unsorted with a repeat: read sorted unique, then un-permute
        np.testing.assert_array_equal(ds.labels(idx), multi[idx])
        np.testing.assert_array_equal(ds.images(idx), images[idx])
        assert ds.images(idx).dtype == np.uint8
        np.testing.assert_array_equal(ds.text(idx), text[idx])
        assert ds.tags([1, 0]) == [["b", "a"], ["zz"]]
        vocab, mat = ds.tag_matrix([1, 0])
        assert vocab == ["a", "b", "zz"] and mat.dtype == np.uint8
        np.testing.assert_array_equal(mat.toarray(), [[1, 1, 0], [0, 0, 1]])
        np.testing.assert_array_equal(ds.partition(), part)
        np.testing.assert_array_equal(ds.array("source_ids", [3]), src[[3]])
        with pytest.raises(HashbenchError, match="out of range"):
            ds.labels([40])


def test_csr_tags_keep_given_vocab_order(tmp_path):
    labels, _ = _toy(n=3)
    write_dataset(tmp_path, name="t", labels=labels, class_names="abc",
                  tags=(["zeta", "alpha"], [0, 2, 2, 3], [0, 1, 1]))
    with open_dataset(tmp_path) as ds:
        assert ds.tag_vocab() == ["zeta", "alpha"]
        assert ds.text_vocab() is None
        assert ds.tags() == [["zeta", "alpha"], [], ["alpha"]]
        assert ds.modalities == {"tags"}
        assert ds.partition() is None


def test_text_with_own_vocab(tmp_path):
    labels, _ = _toy(n=3)
    write_dataset(tmp_path, name="t", labels=labels, class_names="abc", tags=[["a"], ["b"], []],
                  text=np.eye(3, 2), text_vocab=["w1", "w2"])
    with open_dataset(tmp_path) as ds:
        assert not ds.text_from_tags and ds.text_vocab() == ["w1", "w2"]
        assert ds.text().shape == (3, 2)
    with pytest.raises(HashbenchError, match="text_vocab: 1 words given for 2 text columns"):
        write_dataset(tmp_path, name="t", labels=labels, class_names="abc", text=np.eye(3, 2), text_vocab=["w"])
    write_dataset(tmp_path, name="t", labels=labels, class_names="abc", tags=[["a"], ["b"], []], text=np.eye(3, 2))
    with open_dataset(tmp_path) as ds:
        assert ds.text_from_tags and ds.text_vocab() == ["a", "b"]


def test_path_based_images(tmp_path):
    from PIL import Image

    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(3):
        Image.fromarray(np.full((4 + i, 5, 3), 10 * i, dtype=np.uint8)).save(root / f"{i}.png")
    labels, _ = _toy(n=3)
    man = write_dataset(tmp_path / "ds", name="p", labels=labels, class_names="abc",
                        image_paths=[f"{i}.png" for i in range(3)], image_root=str(root), image_size=6)
    assert man["image_shape"] == [6, 6, 3] and man["modalities"] == ["image"]
    with open_dataset(tmp_path / "ds") as ds:
        assert ds.image_paths([2]) == ["2.png"] and ds.image_shape == (6, 6, 3)
        out = ds.images([2, 0], size=8)
        assert out.shape == (2, 8, 8, 3) and out[0].max() == 20
        assert ds.images([0, 1]).shape == (2, 6, 6, 3)          # files of different sizes: one array
        assert ds.images([]).shape == (0, 6, 6, 3)
    (root / "1.png").unlink()
    with open_dataset(tmp_path / "ds") as ds, pytest.raises(HashbenchError, match=r"1\.png: image missing or unreadable"):
        ds.images([0, 1, 2])
    with pytest.raises(HashbenchError, match=r"^image_size: 0 is not allowed"):
        write_dataset(tmp_path / "ds2", name="p", labels=labels, class_names="abc",
                      image_paths=[f"{i}.png" for i in range(3)], image_root=str(root), image_size=0)


def test_deterministic_bytes(tmp_path):
    labels, images = _toy()
    for sub in ("a", "b"):
        write_dataset(tmp_path / sub, name="toy", labels=labels, class_names="xyz", images=images,
                      tags=[["t"]] * 40, single_label=True)
    assert file_md5(tmp_path / "a/dataset.h5") == file_md5(tmp_path / "b/dataset.h5")


def test_rewrite_is_atomic_and_leaves_no_temp(tmp_path):
    labels, images = _toy()
    write_dataset(tmp_path, name="one", labels=labels, class_names="xyz")
    write_dataset(tmp_path, name="two", labels=labels, class_names="xyz", images=images)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset.h5", "manifest.json"]
    with open_dataset(tmp_path) as ds:
        assert ds.name == "two" and ds.modalities == {"image"}


@pytest.mark.parametrize("kwargs, match", [
    ({"labels": np.full((4, 2), 2)}, "labels: values must be 0 or 1"),
    ({"labels": np.full((4, 2), 0.5)}, "labels: values must be 0 or 1"),
    ({"class_names": ["a"]}, "class_names: 1 names given for 2"),
    ({"images": np.zeros((4, 2, 2), np.uint8)}, "images:"),
    ({"images": np.zeros((4, 2, 2, 1), np.uint8), "image_paths": ["a"] * 4}, "give one of them"),
    ({"image_paths": ["a"] * 4}, "image_root: required"),
    ({"partition": np.array([0, 1, 2, 0])}, "partition:"),
    ({"tags": [["a"]]}, "tags: 1 rows given for 4"),
    ({"single_label": True, "labels": np.ones((4, 2), np.uint8)}, "single-label"),
    ({"extra_arrays": {"labels": np.zeros(4)}}, "extra_arrays.labels"),
    ({"tags": (["a", "b"], [0, 2, 2, 2, 2], [1, 1])}, "the same tag twice"),
    ({"extra_files": {"dataset.h5": {}}}, r"extra_files\.dataset\.h5: not allowed"),
    ({"extra_files": {"../x.json": {}}}, r"extra_files\.\.\./x\.json: not allowed"),
])
def test_write_errors_are_one_line(tmp_path, kwargs, match):
    args = {"name": "bad", "labels": np.eye(2, dtype=np.uint8)[[0, 1, 0, 1]], "class_names": ["a", "b"]}
    args.update(kwargs)
    with pytest.raises(HashbenchError, match=match) as err:
        write_dataset(tmp_path, **args)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "dataset.h5").exists() and not list(tmp_path.glob(".*tmp*"))


def test_open_errors_name_folder_and_fix(tmp_path):
    with pytest.raises(HashbenchError, match=r"missing.*dvc repro download") as err:
        open_dataset(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(err.value)
    labels, _ = _toy()
    write_dataset(tmp_path, name="toy", labels=labels, class_names="xyz")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(HashbenchError, match="not valid JSON"):
        open_dataset(tmp_path)
    write_dataset(tmp_path, name="toy", labels=labels, class_names="xyz")
    with open(tmp_path / "dataset.h5", "ab") as f:
        f.write(b"junk")
    with pytest.raises(HashbenchError, match="bytes, manifest says"):
        open_dataset(tmp_path)
    write_dataset(tmp_path, name="toy", labels=labels, class_names="xyz")
    man = json.loads((tmp_path / "manifest.json").read_text())
    (tmp_path / "dataset.h5").write_bytes(b"\0" * man["files"]["dataset.h5"]["bytes"])
    with pytest.raises(HashbenchError, match="not a readable HDF5"):
        open_dataset(tmp_path)
    write_dataset(tmp_path, name="toy", labels=labels, class_names="xyz")
    with h5py.File(tmp_path / "dataset.h5", "r+") as f:  # same size, different content
        f["labels"][0, 0] = 1 - f["labels"][0, 0]
    with pytest.raises(HashbenchError, match="md5 differs"):
        open_dataset(tmp_path, verify=True)


def test_missing_modality_error(tmp_path):
    labels, _ = _toy()
    write_dataset(tmp_path, name="toy", labels=labels, class_names="xyz")
    with open_dataset(tmp_path) as ds:
        with pytest.raises(HashbenchError, match="toy: has no text modality"):
            ds.text()
        with pytest.raises(HashbenchError, match="has no tags"):
            ds.tags()
