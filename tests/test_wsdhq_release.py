"""WSDHQ's own release (data.tar.gz): its lists as a split protocol, its tag files for `tags.source: official`, and
the restricted unpickler of its merge map (no global is ever resolved)."""
import dataclasses
import io
import os
import pickle

import h5py
import numpy as np
import pytest
from helpers import make_tar, serve_as, tar_file

from hashbench import official_tags
from hashbench.data import open_dataset
from hashbench.datasets import REGISTRY, dataset_block, prepare_dataset
from hashbench.datasets import wsdhq_release as release
from hashbench.datasets.base import git_blob_id
from hashbench.errors import HashbenchError
from hashbench.splits import make_split, save_split


class _Runs:
    """Unpickling this would call os.mkdir(path)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_merge_map_loads_a_dict_of_ints_to_lists_of_ints(protocol):
    raw = pickle.dumps({3: [0, 2], 1: [1], -1: [4, 5]}, protocol=protocol)
    assert release.read_merge_map(raw) == [[0, 2], [1]]        # dict order kept, key -1 (DBSCAN noise) dropped


def test_merge_map_refuses_any_global_in_one_line(tmp_path):
    target = tmp_path / "created-by-the-pickle"
    for payload, named in [(pickle.dumps(os.system), "system"), (pickle.dumps(_Runs(str(target))), "mkdir"),
                           (pickle.dumps({np.int64(0): [1]}), "numpy")]:
        with pytest.raises(HashbenchError) as err:
            release.read_merge_map(payload)
        msg = str(err.value)
        assert "\n" not in msg and named in msg
        assert msg.startswith("TagIdMergeMap.pkl: refusing a pickle that refers to ")
    assert not target.exists()                                   # nothing ran
    for payload, what in [(pickle.dumps([1, 2]), "list"), (pickle.dumps({0: {1, 2}}), "dict"),
                          (pickle.dumps({"a": [1]}), "dict")]:
        with pytest.raises(HashbenchError, match=rf"^TagIdMergeMap\.pkl: holds a {what}, not a dict of ints to lists "
                                                 rf"of ints; refusing it$"):
            release.read_merge_map(payload)
    with pytest.raises(HashbenchError, match=r"^TagIdMergeMap\.pkl: not a readable pickle \("):
        release.read_merge_map(b"\x80\x04garbage")


def _matrix(rows) -> bytes:
    buf = io.BytesIO()
    np.savetxt(buf, np.asarray(rows, dtype=np.float64))        # the official files are np.savetxt's floats
    return buf.getvalue()


def _release_tar(path, labels, tags):
    """Flickr folder of a miniature data.tar.gz: test im1-3, database im4-12, train im4-8 (inside the database)."""
    test, database, train = range(1, 4), range(4, 13), range(4, 9)
    names = lambda ids: "".join(f"mirflickr/im{i}.jpg\n" for i in ids).encode()    # noqa: E731
    merge = {0: [0, 2], 1: [1], -1: [3]}
    embs = np.arange(2 * 5, dtype=np.float64).reshape(2, 5) + 1
    root = "data/flickr25k"
    make_tar(path, [
        tar_file(f"{root}/test_img.txt", names(test)), tar_file(f"{root}/test_label.txt", _matrix(labels[:3, :2])),
        tar_file(f"{root}/database_img.txt", names(database)),
        tar_file(f"{root}/database_label.txt", _matrix(labels[3:, :2])),
        tar_file(f"{root}/train_img.txt", names(train)), tar_file(f"{root}/train_tag.txt", _matrix(tags)),
        tar_file(f"{root}/common_tags.txt", b"blue 40\ndog 30\nkid 20\nnikon 20\n"),
        tar_file(f"{root}/tags/TagIdMergeMap.pkl", pickle.dumps(merge, protocol=2)),
        tar_file(f"{root}/tags/FinalTagEmbs.txt", _matrix(embs)),
        tar_file("data/nus-wide/train_img.txt", b"Flickr/actor/0001_1.jpg\n"),
    ])
    return merge, embs


def test_wsdhq_release_lists_and_official_tags(server, tmp_path, monkeypatch, mirflickr_archives):
    base, www, paths = server
    mirflickr_archives(www, n=12)
    serve_as(monkeypatch, REGISTRY["mirflickr25k"], base, www,
             ["mirflickr25k.zip", "mirflickr25k_annotations_v080.zip"])
    rng = np.random.default_rng(0)
    tags = (rng.random((5, 4)) < 0.5).astype(int)
    labels = (rng.random((12, 4)) < 0.5).astype(int)
    merge, embs = _release_tar(www / "data.tar.gz", labels, tags)
    monkeypatch.setattr(release, "RELEASE", dataclasses.replace(release.RELEASE, url=f"{base}/data.tar.gz",
                                                                git_blob=git_blob_id(www / "data.tar.gz")))
    block = {"image_size": 32, "subset": "all", "split": {"protocol": "lists", "format": "wsdhq"}}
    kwargs = {"download_root": tmp_path / "dl", "manual_root": tmp_path / "manual", "progress": False}
    man = prepare_dataset("mirflickr25k", block, tmp_path / "raw", **kwargs)
    assert man["lists"]["counts"] == {"query": 3, "database": 9, "train": 5}
    assert man["lists"]["labels_checked"]["query"] == "not compared (2 label columns, the dataset has 4)"
    assert man["lists"]["official_tags"] == {"train_rows": 5, "raw_tags": 4, "merged_tags": 2}
    assert man["sources"]["data.tar.gz"]["checked"].startswith("git blob ")
    p = dataset_block("mirflickr25k", block)
    with open_dataset(tmp_path / "raw") as ds:
        split = make_split(ds, p["split"], 0)
        info = save_split(tmp_path / "split", split, ds, p["split"], seed=0)
    assert split["query"].tolist() == [0, 1, 2] and split["train"].tolist() == [3, 4, 5, 6, 7]
    assert "train ⊂ database" in info["rules_checked"]
    report = official_tags.run(tmp_path / "raw", tmp_path / "split", tmp_path / "tags", {"source": "official"})
    assert report["counts"]["merged_tags"] == 2 and report["source"] == "official"
    with h5py.File(tmp_path / "tags" / "tags.h5") as f:
        targets, emb = f["targets"][()], f["embeddings"][()]
    expect = np.stack([tags[:, [0, 2]].any(axis=1), tags[:, 1] > 0], axis=1)
    np.testing.assert_array_equal(targets, expect)
    np.testing.assert_allclose(emb, embs / np.linalg.norm(embs, axis=1, keepdims=True), rtol=1e-6)
    vocab = (tmp_path / "tags" / "vocab.json").read_text()
    assert '"blue"' in vocab and '"kid"' in vocab and '"nikon"' not in vocab   # raw tag 3 is DBSCAN noise (-1)

    (www / "data.tar.gz").write_bytes((www / "data.tar.gz").read_bytes() + b"\0")  # not the committed blob
    (tmp_path / "dl" / "mirflickr25k" / "data.tar.gz").unlink()
    with pytest.raises(HashbenchError, match=r"data\.tar\.gz: git blob id [0-9a-f]{40} differs from the committed"):
        prepare_dataset("mirflickr25k", block, tmp_path / "raw2", **kwargs)


def test_official_tags_need_the_release_and_its_train_split(tmp_path, mnist5k):
    dataset, split = mnist5k
    save_split(tmp_path / "split", split, dataset, {**dataset_block("mnist5k", {})["split"]}, seed=0)
    with pytest.raises(HashbenchError, match=r"^tags\.source: official needs WSDHQ's release in data/raw: set the "
                                             r"dataset's split to \{protocol: lists, format: wsdhq\}"):
        official_tags.run(dataset.folder, tmp_path / "split", tmp_path / "tags", {"source": "official"})
    assert not (tmp_path / "tags").exists()


def test_release_inconsistencies_are_one_line(tmp_path):
    rng = np.random.default_rng(1)
    _release_tar(tmp_path / "data.tar.gz", (rng.random((12, 4)) < 0.5).astype(int), np.ones((4, 4)))  # 4 rows, 5 images
    with pytest.raises(HashbenchError, match=r"x: train_tag\.txt must hold one 0/1 row per line of train_img\.txt "
                                             r"\(4 rows for 5 images\)"):
        release.read_release(tmp_path / "data.tar.gz", "flickr25k", "x")
    with pytest.raises(HashbenchError, match=r"x: data\.tar\.gz has no nus-wide/test_img\.txt; use WSDHQ's "
                                             r"data\.tar\.gz"):
        release.read_release(tmp_path / "data.tar.gz", "nus-wide", "x")
