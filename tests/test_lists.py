"""Published split lists (`split.protocol: lists`) on the real lists in ../shared/data and on miniature ones, and
DJSRH's per-label protocol (`djsrh`)."""
import json
import shutil

import numpy as np
import pytest
from helpers import serve_as, shared_data_dir

from hashbench import lists
from hashbench.data import open_dataset, write_dataset
from hashbench.datasets import REGISTRY, dataset_block, prepare_dataset
from hashbench.errors import HashbenchError
from hashbench.splits import check_split, load_split, make_split, save_split

SHARED = shared_data_dir()


def _read(path):
    names, rows = [], []
    for line in path.read_text().splitlines():
        parts = line.split()
        names.append(parts[0])
        rows.append([int(v) for v in parts[1:]])
    return names, np.array(rows, np.uint8)


def _real_lists(folder, parts=("test", "train", "database")):
    folder = SHARED / folder / "deephash-pytorch-lists"
    if not all((folder / f"{p}.txt").is_file() for p in parts):
        pytest.skip(f"real DeepHash-pytorch lists not found under {folder} (set HASHBENCH_SHARED)")
    return {f"lists/{p}.txt": folder / f"{p}.txt" for p in parts}


def _convert_with_lists(name, folder, files, names, labels, **split):
    """The download stage's writing step for converted items (`names`, `labels`) with the placed lists."""
    spec = REGISTRY[name]
    p = spec.validate({"split": {"protocol": "lists", **split}})
    class_names = [f"c{j}" for j in range(labels.shape[1])]
    spec.write(folder, p, files, labels=labels, class_names=class_names, image_paths=names, image_root="images")
    return p


def _split(folder, p):
    with open_dataset(folder) as ds:
        split = make_split(ds, p["split"], 0)
        info = save_split(folder / "split", split, ds, p["split"], seed=0)
    return split, info


def test_mirflickr_deephash_lists_on_the_real_files(tmp_path):
    """DeepHash-pytorch's `mirflickr` lists (1,000 / 4,000 / 20,000, the 419 unlabelled images included) against
    the 25,000 converted label rows (subset: all), then refused in one line by the labelled subset."""
    files = _real_lists("mirflickr25k")
    rows = {}
    for path in files.values():
        for name, row in zip(*_read(path)):
            rows[int(name[2:-4])] = row
    names = [f"im{i}.jpg" for i in range(1, 25001)]
    labels = np.stack([rows[i] for i in range(1, 25001)])
    p = _convert_with_lists("mirflickr25k", tmp_path / "all", files, names, labels)
    split, info = _split(tmp_path / "all", p)
    assert info["counts"] == {"query": 1000, "database": 20000, "train": 4000}
    assert "train ∩ database = ∅" in info["rules_checked"] and any("published deephash" in r
                                                                    for r in info["rules_checked"])
    with open_dataset(tmp_path / "all") as ds:
        assert ds.manifest["lists"]["labels_checked"] == {"query": "equal", "train": "equal", "database": "equal"}
        assert sorted(ds.manifest["sources"]) == sorted(files)
    test_names = _read(files["lists/test.txt"])[0]
    assert sorted(split["query"].tolist()) == sorted(int(n[2:-4]) - 1 for n in test_names)
    keep = labels.any(axis=1)
    assert int(keep.sum()) == 24581
    with pytest.raises(HashbenchError) as err:
        _convert_with_lists("mirflickr25k", tmp_path / "lab", files, [n for n, k in zip(names, keep) if k],
                            labels[keep])
    assert "\n" not in str(err.value)
    assert "is not among the 24581 converted items; the lists were made from another version or subset" in \
        str(err.value)
    flipped = labels.copy()
    first = int(test_names[0][2:-4]) - 1
    flipped[first, 0] ^= 1
    with pytest.raises(HashbenchError, match=rf"test\.txt: 1 of 1000 listed items carry other labels than the "
                                             rf"converted ones \(first: line 1, {test_names[0]}:"):
        _convert_with_lists("mirflickr25k", tmp_path / "flip", files, names, flipped)


def test_nuswide_deephash_lists_on_the_real_files(tmp_path):
    """NUS-WIDE-21's 2,100 / 10,500 lists (no database list: database = every item but the queries)."""
    files = _real_lists("nus-wide", ("test", "train"))
    q_names, q_labels = _read(files["lists/test.txt"])
    t_names, t_labels = _read(files["lists/train.txt"])
    rng = np.random.default_rng(0)
    extra = (rng.random((400, 21)) < 0.2).astype(np.uint8)
    names = [f"Flickr/x/{n.split('/')[-1]}" for n in q_names + t_names] + [f"Flickr/y/{k:04d}_9.jpg"
                                                                           for k in range(400)]
    order = rng.permutation(len(names))                      # the converted order differs from the lists' order
    labels = np.vstack([q_labels, t_labels, extra])[order]
    names = [names[k] for k in order]
    p = _convert_with_lists("nuswide", tmp_path, files, names, labels)
    split, info = _split(tmp_path, p)
    assert info["counts"] == {"query": 2100, "database": 10900, "train": 10500}
    assert "train ⊂ database" in info["rules_checked"]
    with open_dataset(tmp_path) as ds:
        assert ds.manifest["lists"]["database"].startswith("every item but the queries")
        got = ds.labels(split["query"])
    assert (got.sum(axis=0) >= 100).all()                    # DeepHash-pytorch's 100 queries per concept


def test_voc2012_deephash_lists_on_the_real_files(tmp_path):
    files = _real_lists("voc2012")
    parts = {p: _read(files[f"lists/{p}.txt"]) for p in ("test", "train", "database")}
    names = sorted(n.split("/")[-1] for p in parts.values() for n in p[0])
    row_of = {n.split("/")[-1]: r for p in parts.values() for n, r in zip(*p)}
    labels = np.stack([row_of[n] for n in names])
    p = _convert_with_lists("voc2012", tmp_path, files, names, labels)
    _, info = _split(tmp_path, p)
    assert info["counts"] == {"query": 1000, "database": 6540, "train": 4000} and info["n_items"] == 11540


def _write_items(folder, names, labels):
    write_dataset(folder, name="toy", labels=labels, class_names=[f"c{j}" for j in range(labels.shape[1])],
                  image_paths=names, image_root="images")


def test_list_errors_are_one_line(tmp_path):
    names = [f"im{i}.jpg" for i in range(1, 9)]
    labels = np.eye(8, 3, dtype=np.uint8)
    labels[5:, 0] = 1

    def run(**texts):
        folder = tmp_path / "lists" / str(len(list(tmp_path.rglob("*"))))
        folder.mkdir(parents=True)
        files = {}
        for stem, text in texts.items():
            (folder / f"{stem}.txt").write_text(text)
            files[f"lists/{stem}.txt"] = folder / f"{stem}.txt"
        proto = dataset_block("mirflickr25k", {"split": {"protocol": "lists"}})["split"]
        parts = lists.read_parts(proto, files, "x.split")
        return lists.resolve(parts, names, labels, True, "x.split")

    ok = "im1.jpg 1 0 0\nim2.jpg 0 1 0\n"
    arrays, summary = run(test=ok, train="im3.jpg 0 0 1\n")
    assert arrays["list_query"].tolist() == [0, 1] and arrays["list_database"].tolist() == [2, 3, 4, 5, 6, 7]
    for texts, match in [
        ({"test": ok + "im9.jpg 1 0 0\n", "train": ""}, r"test\.txt line 3: im9\.jpg is not among the 8 converted"),
        ({"test": ok + "im1.jpg 1 0 0\n", "train": ""},
         r"test\.txt line 3: im1\.jpg is listed twice \(first at line 1"),
        ({"test": ok, "train": "im3.jpg 0 0 2\n"}, r"train\.txt line 1: label values must be 0 or 1, got 0 0 2"),
        ({"test": ok, "train": "im3.jpg 0 0 1\nim4.jpg 1 0\n"}, r"train\.txt line 2 has 2 label values, line 1 has 3"),
        ({"test": "im1.jpg 1 0\n", "train": ""}, r"test\.txt has 2 label columns, the converted items 3"),
        ({"test": ok, "train": "im6.jpg 0 0 0\n"}, r"train\.txt: 1 of 1 listed items carry other labels"),
    ]:
        with pytest.raises(HashbenchError, match=match) as err:
            run(**texts)
        assert "\n" not in str(err.value) and str(err.value).startswith("x.split: ")
    with pytest.raises(HashbenchError, match=r"x\.split\.protocol: lists needs the items' file names"):
        lists.resolve({}, [], labels, True, "x.split")


def test_hyp2_format(tmp_path):
    """img.txt + targets.txt + flickr.txt: queries are the permutation's first n_query rows, train the next
    n_train, the database the rest (train outside it)."""
    n = 12
    names = [f"im{i}.jpg" for i in range(1, n + 1)]
    labels = (np.arange(n * 2).reshape(n, 2) % 3 == 0).astype(np.uint8)
    labels[labels.sum(1) == 0, 1] = 1
    order = np.random.default_rng(4).permutation(n).tolist()
    folder = tmp_path / "lists"
    folder.mkdir()
    (folder / "img.txt").write_text("".join(f"{x}\n" for x in names[::-1]))          # the lists' own row order
    (folder / "targets.txt").write_text("".join(" " + " ".join(map(str, r)) + "\n" for r in labels[::-1]))
    (folder / "flickr.txt").write_text(json.dumps(order))
    files = {f"lists/{f}": folder / f for f in ("img.txt", "targets.txt", "flickr.txt")}
    p = _convert_with_lists("mirflickr25k", tmp_path / "raw", files, names, labels, format="hyp2", n_query=3,
                            n_train=4)
    split, info = _split(tmp_path / "raw", p)
    rows = [n - 1 - k for k in order]                        # img.txt row k is item n-1-k
    assert split["query"].tolist() == sorted(rows[:3]) and split["train"].tolist() == sorted(rows[3:7])
    assert info["counts"] == {"query": 3, "database": 5, "train": 4}
    assert "train ∩ database = ∅" in info["rules_checked"]
    (folder / "flickr.txt").write_text(json.dumps(order[:-1]))
    with pytest.raises(HashbenchError, match=r"flickr\.txt must be a permutation of 0\.\.11"):
        _convert_with_lists("mirflickr25k", tmp_path / "raw2", files, names, labels, format="hyp2")


def test_split_stage_without_stored_lists_is_one_line(tmp_path, mnist5k):
    with pytest.raises(HashbenchError, match=r"mnist5k\.split\.protocol: lists needs the published lists inside "
                                             r"data/raw; run the download stage"):
        make_split(mnist5k[0], {"protocol": "lists"}, 0)


def test_download_stage_reads_placed_lists(server, tmp_path, monkeypatch, mirflickr_archives):
    """The miniature MIRFLICKR archives served on 127.0.0.1 and DeepHash-style lists in data/manual/: the split
    is the lists; without them, one line names them and the folder."""
    base, www, _ = server
    mirflickr_archives(www, n=12)
    serve_as(monkeypatch, REGISTRY["mirflickr25k"], base, www,
             ["mirflickr25k.zip", "mirflickr25k_annotations_v080.zip"])
    manual = tmp_path / "manual"
    block = {"image_size": 32, "subset": "all", "split": {"protocol": "lists"}}
    with pytest.raises(HashbenchError) as err:
        prepare_dataset("mirflickr25k", block, tmp_path / "raw", download_root=tmp_path / "dl", manual_root=manual,
                        progress=False)
    assert str(err.value) == (
        f"mirflickr25k: mirflickr25k.zip, mirflickr25k_annotations_v080.zip, lists/test.txt, lists/train.txt not "
        f"found; put them in {manual / 'mirflickr25k'}/ (mirflickr25k.zip, mirflickr25k_annotations_v080.zip: "
        f"press.liacs.nl/mirflickr; test.txt, train.txt: swuxyj/DeepHash-pytorch data/mirflickr/) and rerun the "
        f"download stage")
    prepare_dataset("mirflickr25k", {**block, "split": {"protocol": "random", "n_query": 2, "n_train": 3}},
                    tmp_path / "plain", download_root=tmp_path / "dl", manual_root=manual, progress=False)
    with open_dataset(tmp_path / "plain") as ds:
        rows = ds.labels()
    (manual / "mirflickr25k" / "lists").mkdir(parents=True)
    lines = [f"im{i}.jpg " + " ".join(map(str, rows[i - 1])) + "\n" for i in range(1, 13)]
    (manual / "mirflickr25k" / "lists" / "test.txt").write_text("".join(lines[:3]))
    (manual / "mirflickr25k" / "lists" / "train.txt").write_text("".join(lines[3:7]))
    man = prepare_dataset("mirflickr25k", block, tmp_path / "raw", download_root=tmp_path / "dl", manual_root=manual,
                          progress=False)
    assert man["lists"]["counts"] == {"query": 3, "train": 4, "database": 9}
    assert man["sources"]["lists/test.txt"]["checked"] == "none published"
    p = dataset_block("mirflickr25k", block)
    with open_dataset(tmp_path / "raw") as ds:
        split = make_split(ds, p["split"], 0)
        check_split(split, ds, p["split"])
    assert split["query"].tolist() == [0, 1, 2] and split["train"].tolist() == [3, 4, 5, 6]
    shutil.rmtree(tmp_path / "raw")


# ---------------------------------------------------------------------------------------------------- DJSRH
def _multilabel(n=600, c=5, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, c)) < np.linspace(0.5, 0.1, c)).astype(np.uint8)
    labels[labels.sum(1) == 0, 0] = 1
    return labels


def test_djsrh_protocol(tmp_path):
    labels = _multilabel()
    write_dataset(tmp_path, name="toy", labels=labels, class_names=list("abcde"))
    proto = {"protocol": "djsrh", "query_per_class": 10, "train_per_class": 30, "first_class_factor": 2,
             "n_train": 200}
    with open_dataset(tmp_path) as ds:
        split = make_split(ds, proto, 0)
        again = make_split(ds, proto, 0)
        rules = check_split(split, ds, proto)
        assert all(np.array_equal(split[k], again[k]) for k in split)
        assert not np.array_equal(split["query"], make_split(ds, proto, 1)["query"])
    q, t, db = split["query"], split["train"], split["database"]
    assert q.size == 10 * (5 - 1 + 2) and t.size == 200                 # 20 + 4 x 10 queries; train topped up
    assert np.array_equal(db, np.setdiff1d(np.arange(len(labels)), q)) and np.isin(t, db).all()
    assert labels[q, 0].sum() >= 20 and (labels[q].sum(axis=0) >= 10).all()
    assert any("per-label quotas" in r for r in rules)
    short = {**proto, "query_per_class": 40}                            # a class short of items gives what it has
    with open_dataset(tmp_path) as ds:
        s2 = make_split(ds, short, 0)
        check_split(s2, ds, short)
        assert s2["query"].size < 40 * 6 and s2["train"].size == 200
        with pytest.raises(HashbenchError, match=r"toy\.split\.n_train: 600 items cannot give 5000 training items"):
            make_split(ds, {**proto, "n_train": 5000}, 0)
        bad = {**split, "train": split["train"][1:]}
        with pytest.raises(HashbenchError, match=r"n_train = 200"):
            check_split(bad, ds, proto)


def test_djsrh_split_defaults_of_the_dcmh_sets():
    """DJSRH's counts: MIRFlickr 160 + 23 x 80 = 2,000 queries and 400 + 23 x 200 = 5,000 train; NUS TC-10
    10 x 200 / 10 x 500."""
    mir = dataset_block("mirflickr25k-dcmh", {})["split"]
    assert mir["query_per_class"] * (24 - 1 + mir["first_class_factor"]) == 2000
    assert mir["train_per_class"] * (24 - 1 + mir["first_class_factor"]) == mir["n_train"] == 5000
    nus = dataset_block("nuswide-tc10", {})["split"]
    assert (nus["query_per_class"] * 10, nus["train_per_class"] * 10, nus["n_train"]) == (2000, 5000, 5000)


def test_save_and_load_a_lists_split(tmp_path):
    names = [f"im{i}.jpg" for i in range(1, 7)]
    labels = np.eye(6, 2, dtype=np.uint8)
    labels[2:, 1] = 1
    folder = tmp_path / "lists"
    folder.mkdir()
    (folder / "test.txt").write_text("im2.jpg 0 1\n")
    (folder / "train.txt").write_text("im1.jpg 1 0\nim3.jpg 0 1\n")
    (folder / "database.txt").write_text("im1.jpg 1 0\nim3.jpg 0 1\nim4.jpg 0 1\nim5.jpg 0 1\nim6.jpg 0 1\n")
    files = {f"lists/{f}": folder / f for f in ("test.txt", "train.txt", "database.txt")}
    p = _convert_with_lists("coco", tmp_path / "raw", files, names, labels, labeled_unlabeled=True)
    split, info = _split(tmp_path / "raw", p)
    assert split["unlabeled"].tolist() == [3, 4, 5] and "labeled = train" in info["rules_checked"]
    loaded = load_split(tmp_path / "raw" / "split")
    assert all(np.array_equal(loaded[k], split[k]) for k in split)
    (folder / "train.txt").write_text("im1.jpg 1 0\nim2.jpg 0 1\n")
    with pytest.raises(HashbenchError, match=r"1 query items are also in train"):
        _convert_with_lists("coco", tmp_path / "raw2", files, names, labels)
        _split(tmp_path / "raw2", p)


def test_the_download_slice_carries_the_split_only_for_lists():
    """The download stage matches published lists to the items, so it reruns when they change; other protocols
    touch only the split stage."""
    import yaml

    from hashbench.runconfig import resolve

    params = yaml.safe_load(open("params.yaml"))
    params.update(dataset="mirflickr25k", method="lsh")
    assert "split" not in resolve(params)["download"]["mirflickr25k"]
    params["mirflickr25k"]["split"] = {"protocol": "lists", "format": "hyp2"}
    assert resolve(params)["download"]["mirflickr25k"]["split"]["format"] == "hyp2"
