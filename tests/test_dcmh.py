"""DCMH's .mat releases (mirflickr25k-dcmh, nuswide-tc10) on miniature files the tests write: MATLAB v7.3 (HDF5, as
h5py sees MATLAB arrays: axes reversed) and older v5 files (scipy.io.savemat)."""
import h5py
import numpy as np
import pytest
import scipy.io

from hashbench.data import open_dataset
from hashbench.datasets import get_dataset
from hashbench.datasets.mirflickr25k_dcmh import CONCEPTS24
from hashbench.datasets.nuswide_tc10 import TC10_COUNTS, NusWideTc10
from hashbench.errors import HashbenchError
from hashbench.splits import check_split, make_split


def _v73(path, **arrays):
    """A MATLAB v7.3-like file: HDF5 behind a 512-byte user block, each array stored with its axes reversed."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, value in arrays.items():
            f.create_dataset(name, data=np.ascontiguousarray(np.asarray(value).T))
    return path


def _release(folder, prefix, n=40, c=24, v=30, image_format="v73", seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, c)) < 0.2).astype(np.uint8)
    labels[labels.sum(1) == 0, rng.integers(0, c)] = 1
    text = (rng.random((n, v)) < 0.3).astype(np.float64)
    images = rng.integers(0, 256, (n, 8, 6, 3), dtype=np.uint8)          # (N, H, W, C)
    matlab = images.transpose(1, 2, 3, 0)                                 # MATLAB's H x W x C x N
    files = {f"{prefix}-lall.mat": _v73(folder / f"{prefix}-lall.mat", LAll=labels)}
    scipy.io.savemat(folder / f"{prefix}-yall.mat", {"YAll": text})      # v5, as DJSRH's yall for MIRFlickr
    files[f"{prefix}-yall.mat"] = folder / f"{prefix}-yall.mat"
    if image_format == "v73":
        _v73(folder / f"{prefix}-iall.mat", IAll=matlab)
    else:
        scipy.io.savemat(folder / f"{prefix}-iall.mat", {"images": matlab})
    files[f"{prefix}-iall.mat"] = folder / f"{prefix}-iall.mat"
    return files, labels, text, images


@pytest.mark.parametrize("image_format", ["v73", "v5"])
def test_mirflickr25k_dcmh_release(tmp_path, image_format):
    files, labels, text, images = _release(tmp_path, "mirflickr25k", image_format=image_format)
    spec = get_dataset("mirflickr25k-dcmh")
    if image_format == "v73":
        with h5py.File(files["mirflickr25k-iall.mat"], "r") as f:
            assert f["IAll"].shape == (40, 3, 6, 8)                   # what DJSRH reads and transposes (2, 1, 0)
    p = spec.validate({"split": {"protocol": "djsrh", "query_per_class": 1, "train_per_class": 2, "n_train": 20}})
    with pytest.warns(UserWarning, match=r"counts \(40, 24, 30\) differ from DCMH's \(20015, 24, 1386\)"):
        man = spec.convert(files, p, tmp_path / "raw")
    assert man["n_items"] == 40 and man["class_names"] == CONCEPTS24 and man["image_shape"] == [8, 6, 3]
    assert all(man["sources"][f]["checked"] == "none published" for f in files)
    with open_dataset(tmp_path / "raw") as ds:
        np.testing.assert_array_equal(ds.images(), images)
        np.testing.assert_array_equal(ds.labels(), labels)
        np.testing.assert_array_equal(ds.text(), text.astype(np.float32))
        split = make_split(ds, p["split"], 0)
        check_split(split, ds, p["split"])
    assert split["train"].size == 20 and split["query"].size <= 1 * 25
    assert np.array_equal(split["database"], np.setdiff1d(np.arange(40), split["query"]))


def test_nuswide_tc10_columns_are_named_by_their_counts():
    counts = list(TC10_COUNTS.values())[::-1]                           # rarest first in this file
    n = 186577
    labels = np.zeros((n, 10), np.uint8)
    for j, k in enumerate(counts):
        labels[:k, j] = 1
    names, how = NusWideTc10().class_names(labels)
    assert names == list(TC10_COUNTS)[::-1] and how == "named by their NUS-WIDE counts"
    names, how = NusWideTc10().class_names(labels[:100])
    assert names == [f"label_{j}" for j in range(10)] and how.startswith("unnamed")


def test_nuswide_tc10_release_with_v73_text(tmp_path):
    files, labels, text, _ = _release(tmp_path, "nus-wide-tc10", n=30, c=10, v=12, seed=1)
    _v73(files["nus-wide-tc10-yall.mat"], YAll=text)                   # NUS's YAll is an HDF5 file
    spec = get_dataset("nuswide-tc10")
    p = spec.validate({"split": {"protocol": "djsrh", "query_per_class": 1, "train_per_class": 1, "n_train": 12}})
    with pytest.warns(UserWarning, match=r"differ from DCMH's \(186577, 10, 1000\)"):
        spec.convert(files, p, tmp_path / "raw")
    with open_dataset(tmp_path / "raw") as ds:
        np.testing.assert_array_equal(ds.text(), text.astype(np.float32))
        np.testing.assert_array_equal(ds.labels(), labels)


def test_bad_releases_are_one_line(tmp_path):
    files, labels, text, _ = _release(tmp_path, "mirflickr25k")
    spec = get_dataset("mirflickr25k-dcmh")
    p = spec.validate({})
    _v73(files["mirflickr25k-lall.mat"], LAll=labels * 2)
    with pytest.raises(HashbenchError, match=r"^mirflickr25k-lall\.mat: LAll must be an N x C matrix of 0/1"):
        spec.convert(files, p, tmp_path / "raw")
    _v73(files["mirflickr25k-lall.mat"], Labels=labels)
    with pytest.raises(HashbenchError, match=r"^mirflickr25k-lall\.mat: has no variable LAll; use the official file$"):
        spec.convert(files, p, tmp_path / "raw")
    _v73(files["mirflickr25k-lall.mat"], LAll=labels[:-1])
    with pytest.raises(HashbenchError, match=r"YAll has shape \(40, 30\); expected 39 rows"):
        spec.convert(files, p, tmp_path / "raw")
    _v73(files["mirflickr25k-lall.mat"], LAll=labels)
    files["mirflickr25k-yall.mat"].write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    with pytest.raises(HashbenchError, match=r"^mirflickr25k-yall\.mat: not a readable MATLAB file"):
        spec.convert(files, p, tmp_path / "raw")
    scipy.io.savemat(files["mirflickr25k-yall.mat"], {"YAll": text})
    _v73(files["mirflickr25k-iall.mat"], IAll=np.zeros((8, 6, 3, 39), np.uint8))
    with pytest.raises(HashbenchError, match=r"^mirflickr25k-iall\.mat: 39 images for the 40 rows of LAll$"):
        spec.convert(files, p, tmp_path / "raw")
    _v73(files["mirflickr25k-iall.mat"], IAll=np.zeros((8, 6, 3, 40), np.float32))
    with pytest.raises(HashbenchError, match=r"images are float32 .*; expected uint8 H x W x C x N"):
        spec.convert(files, p, tmp_path / "raw")
    assert not (tmp_path / "raw").exists()
