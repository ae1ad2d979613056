"""MS-COCO and ImageNet-100 on miniature archives served on 127.0.0.1, with DeepHash-pytorch-style lists placed in
data/manual/<name>/lists/."""
import io
import json
import tarfile

import numpy as np
import pytest
from helpers import jpeg, make_tar, make_zip, serve_as, tar_file

from hashbench.data import open_dataset
from hashbench.datasets import REGISTRY, dataset_block, prepare_dataset
from hashbench.errors import HashbenchError
from hashbench.splits import check_split, make_split


def _place_lists(manual, parts):
    folder = manual / "lists"
    folder.mkdir(parents=True, exist_ok=True)
    for part, rows in parts.items():
        (folder / f"{part}.txt").write_text("".join(f"{path} {' '.join(map(str, row))}\n" for path, row in rows))


def _split(folder, name, block):
    p = dataset_block(name, block)
    with open_dataset(folder) as ds:
        split = make_split(ds, p["split"], 0)
        return split, check_split(split, ds, p["split"]), ds.labels()


def test_coco(server, tmp_path, monkeypatch):
    base, www, _ = server
    rng = np.random.default_rng(0)
    cats = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 18, "name": "dog"}]   # ids with gaps
    images = {"train2014": [(i, f"COCO_train2014_{i:012d}.jpg") for i in (9, 3, 7, 11)],
              "val2014": [(i, f"COCO_val2014_{i:012d}.jpg") for i in (4, 2)]}
    objects = {9: [18, 1, 18], 3: [3], 7: [], 11: [1], 4: [3, 18], 2: [1]}     # image 7 has no object: left out
    for split, ims in images.items():
        make_zip(www / f"{split}.zip", [(f"{split}/{f}", jpeg(rng)) for _, f in ims])
    make_zip(www / "annotations_trainval2014.zip", [
        (f"annotations/instances_{split}.json", json.dumps({
            "images": [{"id": i, "file_name": f} for i, f in ims], "categories": cats,
            "annotations": [{"image_id": i, "category_id": c} for i, _ in ims for c in objects[i]]}))
        for split, ims in images.items()])
    serve_as(monkeypatch, REGISTRY["coco"], base, www, ["train2014.zip", "val2014.zip", "annotations_trainval2014.zip"])
    order = [("train2014", 3), ("train2014", 9), ("train2014", 11), ("val2014", 2), ("val2014", 4)]   # id order
    expect = {3: [0, 1, 0], 9: [1, 0, 1], 11: [1, 0, 0], 2: [1, 0, 0], 4: [0, 1, 1]}
    rows = {i: (f"{s}/COCO_{s}_{i:012d}.jpg", expect[i]) for s, i in order}
    manual = tmp_path / "manual" / "coco"
    _place_lists(manual, {"test": [rows[4], rows[11]], "train": [rows[9], rows[2]],
                          "database": [rows[3], rows[9], rows[2]]})
    kwargs = {"download_root": tmp_path / "dl", "manual_root": tmp_path / "manual", "progress": False}
    man = prepare_dataset("coco", {"image_size": 32}, tmp_path / "raw", **kwargs)
    assert man["n_items"] == 5 and man["class_names"] == ["person", "car", "dog"]
    assert man["lists"]["counts"] == {"query": 2, "train": 2, "database": 3}
    with open_dataset(tmp_path / "raw") as ds:
        assert ds.image_paths() == [rows[i][0] for _, i in order] and ds.images([4]).shape == (1, 32, 32, 3)
        np.testing.assert_array_equal(ds.labels(), [expect[i] for _, i in order])
    split, rules, _ = _split(tmp_path / "raw", "coco", {})
    assert split["query"].tolist() == [2, 4] and split["train"].tolist() == [1, 3] and "train ⊂ database" in rules
    _place_lists(manual, {"test": [(rows[4][0], [1, 1, 1])]})
    with pytest.raises(HashbenchError, match=r"coco\.split: test\.txt: 1 of 1 listed items carry other labels"):
        prepare_dataset("coco", {}, tmp_path / "raw2", **kwargs)


def _inner_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_imagenet100(server, tmp_path, monkeypatch):
    """The lists define the classes and items; only the listed images are copied out of the (nested) tars."""
    base, www, _ = server
    rng = np.random.default_rng(1)
    wnids = ["n01440764", "n01443537", "n09999999"]       # the last class is not in the lists
    per_class = {w: {f"{w}_{k}.JPEG": jpeg(rng) for k in range(1, 4)} for w in wnids}
    make_tar(www / "ILSVRC2012_img_train.tar", [tar_file(f"{w}.tar", _inner_tar(per_class[w])) for w in wnids])
    val = {f"ILSVRC2012_val_{k:08d}.JPEG": jpeg(rng) for k in range(1, 5)}
    make_tar(www / "ILSVRC2012_img_val.tar", [tar_file(name, data) for name, data in val.items()])
    serve_as(monkeypatch, REGISTRY["imagenet100"], base, www, ["ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"])
    one_hot = {"n01440764": [1, 0], "n01443537": [0, 1]}
    database = [(f"image/{f}", one_hot[w]) for w in wnids[:2] for f in sorted(per_class[w])]
    manual = tmp_path / "manual" / "imagenet100"
    _place_lists(manual, {"database": database, "train": database[:2] + database[3:4],
                          "test": [("val_image/ILSVRC2012_val_00000002.JPEG", [0, 1]),
                                   ("val_image/ILSVRC2012_val_00000004.JPEG", [1, 0])]})
    kwargs = {"download_root": tmp_path / "dl", "manual_root": tmp_path / "manual", "progress": False}
    man = prepare_dataset("imagenet100", {"image_size": 32}, tmp_path / "raw", **kwargs)
    assert man["n_items"] == 8 and man["class_names"] == ["n01440764", "n01443537"]
    assert man["generator"] == {"items": 8, "train_images": 6, "val_images": 2}
    copied = sorted(p.name for p in (tmp_path / "raw" / "images").rglob("*.JPEG"))
    assert copied == sorted([f for w in wnids[:2] for f in per_class[w]] + ["ILSVRC2012_val_00000002.JPEG",
                                                                            "ILSVRC2012_val_00000004.JPEG"])
    with open_dataset(tmp_path / "raw") as ds:
        paths = ds.image_paths()                             # items in file-name order
        assert paths[:3] == ["val/ILSVRC2012_val_00000002.JPEG", "val/ILSVRC2012_val_00000004.JPEG",
                             "train/n01440764/n01440764_1.JPEG"] and ds.images([7]).shape == (1, 32, 32, 3)
    split, rules, labels = _split(tmp_path / "raw", "imagenet100", {})
    assert (split["query"].size, split["train"].size, split["database"].size) == (2, 3, 6)
    assert "train ⊂ database" in rules
    with pytest.raises(HashbenchError, match=r"imagenet100\.split\.protocol: 'random' is not allowed; use lists"):
        dataset_block("imagenet100", {"split": {"protocol": "random"}})
    _place_lists(manual, {"test": [("val_image/ILSVRC2012_val_00000009.JPEG", [0, 1])]})
    with pytest.raises(HashbenchError, match=r"ILSVRC2012_img_val\.tar: ILSVRC2012_val_00000009\.JPEG not found; "
                                             r"the lists name an image the archive lacks"):
        prepare_dataset("imagenet100", {}, tmp_path / "raw2", **kwargs)
    _place_lists(manual, {"train": [("image/n01443537_1.JPEG", [1, 0])]})
    with pytest.raises(HashbenchError, match=r"line \d+: n01443537_1\.JPEG carries another label row than in an "
                                             r"earlier list"):
        prepare_dataset("imagenet100", {}, tmp_path / "raw3", **kwargs)
