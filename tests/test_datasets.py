"""The dataset registry and the converters of the seed papers' image sets, on miniature archives served on 127.0.0.1
or placed in a manual folder (and NUS-WIDE's / MIRFLICKR's label conventions on the real files in ../shared/data)."""
import ast
import dataclasses
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import jpeg, make_tar, make_zip, md5, serve_as, shared_data_dir, tar_file

from hashbench import download
from hashbench.data import file_md5, open_dataset
from hashbench.datasets import REGISTRY, dataset_block, get_dataset, prepare_dataset
from hashbench.datasets.cifar10 import CLASSES as CIFAR10_CLASSES
from hashbench.datasets.nuswide import read_groundtruth
from hashbench.datasets.voc2007 import CLASSES as VOC_CLASSES
from hashbench.errors import HashbenchError
from hashbench.splits import make_split

SRC = Path(__file__).resolve().parents[1] / "src" / "hashbench"
CIFAR_NAME = "cifar-10-binary.tar.gz"


def convert(name, files: dict, folder, **block):
    spec = get_dataset(name)
    return spec.convert({k: Path(v) for k, v in files.items()}, spec.validate(block), Path(folder))


# ---------------------------------------------------------------------------------------------------- registry
def test_every_registered_dataset_has_a_module_and_a_valid_params_block():
    params = yaml.safe_load((SRC.parents[1] / "params.yaml").read_text())
    modules = {p.stem for p in (SRC / "datasets").glob("*.py")}
    for name, spec in REGISTRY.items():
        assert name.replace("-", "_") in modules, name          # one module per dataset
        assert name in params, f"params.yaml lacks a {name} block"
        block = dataset_block(name, params[name])
        assert set(block) == set(spec.schema) | {"split"} and set(params[name]) <= set(block)
        assert spec.modalities and (spec.embedded or spec.sources)
        for s in spec.sources:
            assert s.md5 is None or len(s.md5) == 32
            assert s.md5 or s.git_blob or s.max_bytes or s.bytes, f"{name}: {s.name} has neither checksum nor cap"
    top = (SRC.parents[1] / "params.yaml").read_text().splitlines()[1]
    assert all(name in top for name in REGISTRY), "the params.yaml top comment names every dataset"


def _imports(path: Path) -> set[str]:
    """Modules of the hashbench package that `path` imports (at any depth of the code)."""
    package = ["hashbench", *path.relative_to(SRC).with_suffix("").parts]
    if package[-1] == "__init__":
        package = package[:-1]
    else:
        package = package[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            out.update(names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hashbench"):
            out.add(node.module)
    return out


def test_no_import_cycle_among_the_data_modules():
    """download.py fetches and extracts only; datasets/, lists, splits, catalog and the tag modules import one way."""
    files = [SRC / f for f in ("download.py", "catalog.py", "lists.py", "splits.py", "data.py", "embedded.py",
                               "tags.py", "official_tags.py", "runconfig.py")] + sorted((SRC / "datasets").glob("*.py"))
    mod = {f: "hashbench." + ".".join(f.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
           for f in files}
    known = set(mod.values())
    graph = {mod[f]: {m if m in known else m.rsplit(".", 1)[0] for m in _imports(f)} & known for f in files}
    assert graph["hashbench.download"] <= {"hashbench.data"}       # no dataset code left in download.py

    done: set[str] = set()

    def visit(node, stack):
        assert node not in stack, f"import cycle: {' -> '.join(stack + [node])}"
        if node not in done:
            for nxt in sorted(graph.get(node, ())):
                visit(nxt, stack + [node])
            done.add(node)

    for start in sorted(graph):
        visit(start, [])


def test_unknown_dataset_and_key_are_one_line(tmp_path):
    with pytest.raises(HashbenchError, match=r"dataset: 'imagenet' is not allowed; use one of mnist5k, mnist5k-tags"):
        prepare_dataset("imagenet", {}, tmp_path / "raw")
    with pytest.raises(HashbenchError, match=r"^cifar10\.bogus: unknown key; allowed keys: seed$"):
        prepare_dataset("cifar10", {"bogus": 1}, tmp_path / "raw")
    with pytest.raises(HashbenchError, match=r"cifar10\.split\.protocol: lists is not allowed for cifar10"):
        dataset_block("cifar10", {"split": {"protocol": "lists"}})
    with pytest.raises(HashbenchError, match=r"nuswide\.split\.format: 'hyp2' is not allowed for nuswide; use "
                                             r"deephash, wsdhq"):
        dataset_block("nuswide", {"split": {"protocol": "lists", "format": "hyp2"}})


@pytest.mark.parametrize("name, files", [
    ("wikipedia", "wikipedia_dataset.zip could not be downloaded; put it in {folder}/"),
    ("coco", "train2014.zip, val2014.zip, annotations_trainval2014.zip, lists/test.txt, lists/train.txt, "
             "lists/database.txt not found; put them in {folder}/"),
    ("imagenet100", "ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar, lists/test.txt, lists/train.txt, "
                    "lists/database.txt not found; put them in {folder}/"),
    ("mirflickr25k-dcmh", "mirflickr25k-lall.mat, mirflickr25k-yall.mat, mirflickr25k-iall.mat not found; put them "
                          "in {folder}/"),
    ("nuswide-tc10", "nus-wide-tc10-lall.mat, nus-wide-tc10-yall.mat, nus-wide-tc10-iall.mat not found"),
])
def test_missing_files_stop_in_one_line_naming_them_and_the_folder(tmp_path, monkeypatch, name, files):
    """Without the files: nothing is written, one line names every missing file and data/manual/<name>/."""
    spec = get_dataset(name)
    dead = tuple(dataclasses.replace(s, url=s.url and f"http://127.0.0.1:9/{s.name}") for s in spec.sources)
    monkeypatch.setattr(type(spec), "sources", dead)  # an unreachable host instead of the real one
    manual = tmp_path / "manual"
    with pytest.raises(HashbenchError) as err:
        prepare_dataset(name, {}, tmp_path / "raw", manual_root=manual, download_root=tmp_path / "dl",
                        progress=False)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{name}: ") and files.format(folder=manual / name) in msg, msg
    assert not (tmp_path / "raw").exists()


# ---------------------------------------------------------------------------------------------------- CIFAR-10
def _cifar_records(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    planes = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    rec = np.concatenate([labels[:, None], planes.reshape(n, 3072)], axis=1)
    return rec.tobytes(), labels, planes


def _fake_cifar(path, per_batch=3):
    """A tiny cifar-10-binary.tar.gz: 5 train batches + test batch of `per_batch` records, and batches.meta.txt."""
    expect = {"labels": [], "planes": []}
    members = []
    for k, name in enumerate([f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]):
        data, labels, planes = _cifar_records(per_batch, k)
        expect["labels"].append(labels)
        expect["planes"].append(planes)
        members.append(tar_file(f"cifar-10-batches-bin/{name}", data))
    members.append(tar_file("cifar-10-batches-bin/batches.meta.txt", "\n".join(CIFAR10_CLASSES).encode() + b"\n\n"))
    make_tar(path, members)
    return np.concatenate(expect["labels"]), np.concatenate(expect["planes"])


def test_cifar_binary_download_and_convert(server, tmp_path, monkeypatch):
    base, www, paths = server
    labels, planes = _fake_cifar(www / CIFAR_NAME)
    serve_as(monkeypatch, REGISTRY["cifar10"], base, www, [CIFAR_NAME])
    man = prepare_dataset("cifar10", {"seed": 0}, tmp_path / "raw", download_root=tmp_path / "dl",
                          manual_root=tmp_path / "manual", progress=False)
    assert man["n_items"] == 18 and man["image_shape"] == [32, 32, 3] and man["class_names"][0] == "airplane"
    assert man["sources"][CIFAR_NAME] == {"bytes": (www / CIFAR_NAME).stat().st_size, "checked": "md5",
                                          "md5": md5((www / CIFAR_NAME).read_bytes())}
    with open_dataset(tmp_path / "raw", verify=True) as ds:
        assert ds.single_label and ds.labels().argmax(axis=1).tolist() == labels.tolist()
        np.testing.assert_array_equal(ds.images(np.arange(18)), planes.transpose(0, 2, 3, 1))  # R,G,B planes
        assert ds.partition().tolist() == [0] * 15 + [1] * 3  # test_batch = query side
    assert paths == [f"/{CIFAR_NAME}"]


def test_prepare_dataset_uses_manual_copy(tmp_path, monkeypatch):
    manual = tmp_path / "manual" / "cifar10"
    manual.mkdir(parents=True)
    _fake_cifar(manual / CIFAR_NAME, per_batch=2)
    spec = REGISTRY["cifar10"]
    source = dataclasses.replace(spec.sources[0], url="http://127.0.0.1:9/nowhere/" + CIFAR_NAME,
                                 md5=md5((manual / CIFAR_NAME).read_bytes()))
    monkeypatch.setattr(type(spec), "sources", (source,))
    man = prepare_dataset("cifar10", {"seed": 0}, tmp_path / "raw", download_root=tmp_path / "dl",
                          manual_root=tmp_path / "manual", progress=False)
    assert man["n_items"] == 12 and man["name"] == "cifar10"
    (manual / CIFAR_NAME).write_bytes(b"tampered")
    with pytest.raises(HashbenchError, match=r"manually placed file does not match"):
        prepare_dataset("cifar10", {}, tmp_path / "raw2", manual_root=tmp_path / "manual", progress=False)


def test_cifar_corrupt_archive(tmp_path):
    make_tar(tmp_path / CIFAR_NAME, [tar_file(f"cifar-10-batches-bin/{n}", b"\0" * 100)
                                     for n in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]])
    with pytest.raises(HashbenchError, match="not a multiple of the 3073-byte record"):
        convert("cifar10", {CIFAR_NAME: tmp_path / CIFAR_NAME}, tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


# ----------------------------------------------------------------------------------------------------- NUS-WIDE
def _fake_groundtruth(path, concepts, n=50, bad_line=None):
    rng = np.random.default_rng(1)
    labels = (rng.random((n, len(concepts))) < 0.3).astype(int)
    split = n * 3 // 5
    with zipfile.ZipFile(path, "w") as zf:
        for j, c in enumerate(concepts):
            col = [str(v) for v in labels[:, j]]
            zf.writestr(f"AllLabels/Labels_{c}.txt", "\n".join(col) + "\n")
            train = list(col[:split])
            if bad_line is not None and j == 0:
                train[bad_line - 1] = "-1130179"
            zf.writestr(f"TrainTestLabels/Labels_{c}_Train.txt", "\n".join(train) + "\n")
            zf.writestr(f"TrainTestLabels/Labels_{c}_Test.txt", "\n".join(col[split:]) + "\n")
    return labels


def _nus_files(tmp_path, **extra):
    return {"Groundtruth.zip": tmp_path / "Groundtruth.zip", "ConceptsList.zip": tmp_path / "ConceptsList.zip",
            **extra}


def test_nuswide_bad_value_is_reported_not_fatal(tmp_path):
    concepts = ["lake", "sky", "zebra"]
    labels = _fake_groundtruth(tmp_path / "Groundtruth.zip", concepts, bad_line=7)
    make_zip(tmp_path / "ConceptsList.zip", [("Concepts81.txt", "\r\n".join(concepts) + "\r\n")])
    with pytest.warns(UserWarning, match=r"Labels_lake_Train\.txt: 1 bad label value\(s\) treated as 0 "
                                         r"\(-1130179 at line 7\)"):
        train = read_groundtruth(tmp_path / "Groundtruth.zip", concepts, "train")
    assert train.shape == (30, 3) and train[6, 0] == 0
    with pytest.warns(UserWarning):
        man = convert("nuswide", _nus_files(tmp_path), tmp_path / "raw", subset="all81")
    keep = labels.any(axis=1)
    assert man["n_items"] == int(keep.sum()) and man["modalities"] == []
    order = np.argsort(-labels.sum(axis=0), kind="stable")
    assert man["class_names"] == [concepts[j] for j in order]
    with open_dataset(tmp_path / "raw") as ds:
        np.testing.assert_array_equal(ds.labels(), labels[keep][:, order])
        np.testing.assert_array_equal(ds.array("source_index"), np.flatnonzero(keep))


def test_nuswide_image_list_and_tags(tmp_path, monkeypatch):
    monkeypatch.setattr(type(REGISTRY["nuswide"]), "check_train_test", False)
    concepts = ["lake", "sky"]
    labels = _fake_groundtruth(tmp_path / "Groundtruth.zip", concepts)
    make_zip(tmp_path / "ConceptsList.zip", [("ConceptsList/Concepts81.txt", "\n".join(concepts) + "\n")])
    n = len(labels)
    lines = [f"Flickr\\c{i % 3}\\{i:04d}_1.jpg" for i in range(n)]
    make_zip(tmp_path / "ImageList.zip", [("ImageList/Imagelist.txt", "\r\n".join(lines) + "\r\n")])
    bag = (np.random.default_rng(2).random((n, 4)) < 0.4).astype(int)
    make_zip(tmp_path / "NUS_WID_Tags.zip", [
        ("NUS_WID_Tags/All_Tags.txt", "".join(f"{i:04d}_{i}      t{i % 5} sky t{i % 5}\r\n" for i in range(n))),
        ("NUS_WID_Tags/TagList1k.txt", "sky\nlake\nwater\nsun\n"),
        ("NUS_WID_Tags/AllTags1k.txt", "".join("\t".join(map(str, row)) + "\t\n" for row in bag))])
    man = convert("nuswide", _nus_files(tmp_path, **{"ImageList.zip": tmp_path / "ImageList.zip",
                                                      "NUS_WID_Tags.zip": tmp_path / "NUS_WID_Tags.zip"}),
                  tmp_path / "raw", subset="all81")
    keep = np.flatnonzero(labels.any(axis=1))
    assert man["modalities"] == ["image", "tags", "text"]
    with open_dataset(tmp_path / "raw") as ds:
        assert ds.image_paths() == [lines[i].replace("\\", "/") for i in keep] and ds.image_root == "images"
        assert ds.tags([0]) == [[f"t{keep[0] % 5}", "sky"]]
        np.testing.assert_array_equal(ds.text(), bag[keep])
        assert ds.text_vocab() == ["sky", "lake", "water", "sun"]
    make_zip(tmp_path / "short.zip", [("All_Tags.txt", "a x\n"), ("TagList1k.txt", "sky\n"), ("AllTags1k.txt", "1\n")])
    with pytest.raises(HashbenchError, match=rf"short\.zip: All_Tags\.txt has 1 lines for {n} label rows"):
        convert("nuswide", _nus_files(tmp_path, **{"NUS_WID_Tags.zip": tmp_path / "short.zip"}), tmp_path / "raw2")
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(HashbenchError, match=r"bad\.zip: not a readable zip"):
        convert("nuswide", _nus_files(tmp_path, **{"ImageList.zip": tmp_path / "bad.zip"}), tmp_path / "raw3")


def test_reading_a_member_that_declares_too_much_is_refused_before_reading(tmp_path, monkeypatch):
    archive = make_zip(tmp_path / "Groundtruth.zip", [("AllLabels/Labels_sky.txt", b"0\n" * 600_000)])
    monkeypatch.setattr(download, "MAX_READ_BYTES", 1_000_000)
    with pytest.raises(HashbenchError, match=r"declares 1200000 bytes, over the 1000000-byte limit"):
        read_groundtruth(archive, ["sky"])


def test_nuswide_real_groundtruth(tmp_path):
    shared = shared_data_dir() / "nus-wide"
    gt, cl = shared / "Groundtruth.zip", shared / "ConceptsList.zip"
    if not gt.is_file() or not cl.is_file():
        pytest.skip(f"NUS-WIDE Groundtruth.zip / ConceptsList.zip not found under {shared}")
    sources = {s.name: s for s in REGISTRY["nuswide"].sources}
    assert file_md5(gt) == sources["Groundtruth.zip"].md5 and file_md5(cl) == sources["ConceptsList.zip"].md5
    with pytest.warns(UserWarning, match=r"Labels_lake_Train\.txt: 1 bad label value\(s\) treated as 0 "
                                         r"\(-1130179 at line 78373\)"):
        man = convert("nuswide", {"Groundtruth.zip": gt, "ConceptsList.zip": cl}, tmp_path / "raw")
    assert man["n_items"] == 195834 and man["class_names"][:3] == ["sky", "clouds", "person"]
    with open_dataset(tmp_path / "raw") as ds:
        assert ds.labels().sum(axis=0)[:3].tolist() == [74190, 54087, 51577]


# ------------------------------------------------------------------------------------------------ MIRFLICKR-25K
MIR_BASE = ("animals baby bird car clouds dog female flower food indoor lake male night people plant_life portrait "
            "river sea sky structures sunset transport tree water").split()
MIR_R1 = "baby bird car clouds dog female flower male night people portrait river sea tree".split()
MIR_FILES = ("mirflickr25k.zip", "mirflickr25k_annotations_v080.zip")


def test_mirflickr_download_and_convert_all(server, tmp_path, monkeypatch, mirflickr_archives):
    base, www, paths = server
    mirflickr_archives(www, n=12)
    serve_as(monkeypatch, REGISTRY["mirflickr25k"], base, www, MIR_FILES)
    man = prepare_dataset("mirflickr25k", {"seed": 0, "image_size": 32, "subset": "all"}, tmp_path / "raw",
                          download_root=tmp_path / "dl", manual_root=tmp_path / "manual", progress=False)
    assert man["n_items"] == 12 and man["class_names"] == ["animals", "baby", "baby_r1", "sky"]  # sorted file names
    assert man["image_shape"] == [32, 32, 3] and set(man["modalities"]) == {"image", "tags", "text"}
    assert man["generator"]["n_unlabelled"] == 4                                   # images 4, 8, 10 and 11
    with open_dataset(tmp_path / "raw") as ds:
        labels = ds.labels()
        assert (np.flatnonzero(labels[:, 3]) + 1).tolist() == [3, 6, 9, 12]               # sky.txt
        assert (np.flatnonzero(labels[:, 2]) + 1).tolist() == [1, 9]                      # baby_r1.txt
        assert ds.tags([0, 2, 3, 8]) == [["kid", "nikon"], ["blue", "nikon"], [], ["kid", "blue", "nikon"]]
        np.testing.assert_array_equal(ds.text([0, 2, 3]), [[0, 0, 1, 1], [1, 0, 0, 1], [0, 0, 0, 0]])
        assert ds.text_vocab() == ["blue", "dog", "kid", "nikon"]
        assert ds.images([0, 11]).shape == (2, 32, 32, 3)
    assert sorted(paths) == ["/mirflickr25k.zip", "/mirflickr25k_annotations_v080.zip"]


def test_mirflickr_subsets_labelled_and_dcmh(tmp_path, mirflickr_archives):
    """labelled drops the images without any label; dcmh keeps the concept columns (no `_r1`) and the images with
    one of those labels and one common tag."""
    from conftest import MIR_CONCEPTS

    n = 24
    mirflickr_archives(tmp_path, n=n)
    rules = {**MIR_CONCEPTS, "dog_r1": lambda i: i == 8}                 # image 8's only label is an `_r1` one
    make_zip(tmp_path / MIR_FILES[1], [(f"mirflickr25k_annotations_v080/{c}.txt",
                                        "".join(f"{i}\n" for i in range(1, n + 1) if rule(i)))
                                       for c, rule in rules.items()])
    files = {f: tmp_path / f for f in MIR_FILES}
    labelled = [i for i in range(1, n + 1) if any(rule(i) for rule in rules.values())]
    base_cols = [c for c in sorted(rules) if not c.endswith("_r1")]
    no_tags = {i for i in range(1, n + 1) if i % 6 == 4}                 # the fixture writes no tags file for them
    dcmh = [i for i in labelled if any(rules[c](i) for c in base_cols) and i not in no_tags]
    assert 8 in labelled and 8 not in dcmh and 22 in labelled and 22 not in dcmh
    man = convert("mirflickr25k", files, tmp_path / "lab", image_size=32)
    assert man["n_items"] == len(labelled) and man["generator"]["n_kept"] == len(labelled)
    with open_dataset(tmp_path / "lab") as ds:
        assert ds.array("source_ids").tolist() == labelled and ds.labels().any(axis=1).all()
        assert ds.image_paths() == [f"im{i}.jpg" for i in labelled]
    man = convert("mirflickr25k", files, tmp_path / "dcmh", image_size=32, subset="dcmh")
    assert man["class_names"] == base_cols and man["n_items"] == len(dcmh)
    with open_dataset(tmp_path / "dcmh") as ds:
        assert ds.array("source_ids").tolist() == dcmh
        assert ds.labels().any(axis=1).all() and ds.text().any(axis=1).all()
        assert sorted(p.name for p in (tmp_path / "dcmh" / "images").iterdir()) == sorted(f"im{i}.jpg" for i in dcmh)


def test_mirflickr_bad_annotation_and_missing_image(tmp_path, mirflickr_archives):
    mirflickr_archives(tmp_path, n=12)
    make_zip(tmp_path / "bad.zip", [("sky.txt", "1\n13\n")])
    with pytest.raises(HashbenchError, match=r"^bad\.zip:sky\.txt line 2: '13' is not an image id; ids are 1\.\.12$"):
        convert("mirflickr25k", {MIR_FILES[0]: tmp_path / MIR_FILES[0], MIR_FILES[1]: tmp_path / "bad.zip"},
                tmp_path / "raw")
    assert not (tmp_path / "raw").exists()  # nothing written
    make_zip(tmp_path / "holes.zip", [("mirflickr/im1.jpg", b"x"), ("mirflickr/im3.jpg", b"x")])
    with pytest.raises(HashbenchError, match=r"not im1\.jpg\.\.im2\.jpg \(first missing: im2\.jpg\)"):
        convert("mirflickr25k", {MIR_FILES[0]: tmp_path / "holes.zip", MIR_FILES[1]: tmp_path / MIR_FILES[1]},
                tmp_path / "raw2")


def test_mirflickr_label_conventions_on_the_real_label_lists():
    """Sorted annotation file names put each `_r1` subset right after its concept: on the real 25,000 labels
    (DeepHash-pytorch's lists) every `_r1` column lies inside the column before it, except 4 images of people_r1
    that the official files do not list under people; 419 images have no label, so `labelled` keeps 24,581 (the
    same with the 24 concept columns alone)."""
    folder = shared_data_dir() / "mirflickr25k" / "deephash-pytorch-lists"
    if not folder.is_dir():
        pytest.skip(f"MIRFLICKR-25K label lists not found under {folder}")
    rows = [[int(v) for v in line.split()[1:]] for part in ("test", "train", "database")
            for line in (folder / f"{part}.txt").read_text().splitlines() if line.strip()]
    labels = np.array(rows)
    names = [f[:-4] for f in sorted([b + ".txt" for b in MIR_BASE] + [r + "_r1.txt" for r in MIR_R1])]
    assert labels.shape == (25000, 38) == (25000, len(names)) and int((labels.sum(1) == 0).sum()) == 419
    outside = {name: int(((labels[:, j] == 1) & (labels[:, j - 1] == 0)).sum())
               for j, name in enumerate(names) if name.endswith("_r1")}
    assert all(names[names.index(r + "_r1") - 1] == r for r in MIR_R1)
    assert outside == {**{r + "_r1": 0 for r in MIR_R1}, "people_r1": 4}
    concepts = [j for j, name in enumerate(names) if not name.endswith("_r1")]
    assert int(labels.any(axis=1).sum()) == int(labels[:, concepts].any(axis=1).sum()) == 24581


# -------------------------------------------------------------------------------------------------- CUB, VOC
def test_cub200_download_and_convert(server, tmp_path, monkeypatch):
    base, www, _ = server
    rng = np.random.default_rng(0)
    classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]
    rows = [(i, classes[(i - 1) % 3], (i - 1) % 3 + 1, int(i % 4 != 0)) for i in range(1, 13)]
    members = [("CUB_200_2011/classes.txt", "".join(f"{j + 1} {c}\n" for j, c in enumerate(classes)).encode()),
               ("CUB_200_2011/images.txt", "".join(f"{i} {c}/img_{i}.jpg\n" for i, c, _, _ in rows).encode()),
               ("CUB_200_2011/image_class_labels.txt", "".join(f"{i} {k}\n" for i, _, k, _ in rows).encode()),
               ("CUB_200_2011/train_test_split.txt", "".join(f"{i} {t}\n" for i, _, _, t in rows).encode())]
    members += [(f"CUB_200_2011/images/{c}/img_{i}.jpg", jpeg(rng, 8 + i, 10)) for i, c, _, _ in rows]
    make_tar(www / "CUB_200_2011.tgz", [tar_file(name, data) for name, data in members])
    serve_as(monkeypatch, REGISTRY["cub200"], base, www, ["CUB_200_2011.tgz"])
    man = prepare_dataset("cub200", {"image_size": 32}, tmp_path / "raw", download_root=tmp_path / "dl",
                          manual_root=tmp_path / "manual", progress=False)
    assert man["n_items"] == 12 and man["class_names"] == classes and man["image_shape"] == [32, 32, 3]
    with open_dataset(tmp_path / "raw") as ds:
        assert ds.single_label and ds.labels().argmax(1).tolist() == [(i - 1) % 3 for i in range(1, 13)]
        assert ds.partition().tolist() == [int(i % 4 == 0) for i in range(1, 13)]     # test images = query side
        assert ds.images([0, 11]).shape == (2, 32, 32, 3)
        split = make_split(ds, REGISTRY["cub200"].split_default, 0)
    assert split["query"].tolist() == [3, 7, 11] and split["train"].tolist() == split["database"].tolist()


def _voc_tars(www, name, objects, sides, rng):
    year = name[-4:]
    root = f"VOCdevkit/VOC{year}"
    spec = REGISTRY[name]
    tars = [s.name for s in spec.sources]
    for t, archive in enumerate(tars):
        members = []
        for side, ids in zip(spec.sides, sides):
            if len(tars) == 1 or t == (side == spec.sides[1]):   # 2007: trainval and test come in separate tars
                members.append(tar_file(f"{root}/ImageSets/Main/{side}.txt", "".join(f"{i}\n" for i in ids).encode()))
                for i in ids:
                    xml = "<annotation>" + "".join(f"<object><name>{o}</name><difficult>{hard}</difficult></object>"
                                                   for o, hard in objects[i]) + "</annotation>"
                    members += [tar_file(f"{root}/Annotations/{i}.xml", xml.encode()),
                                tar_file(f"{root}/JPEGImages/{i}.jpg", jpeg(rng))]
        make_tar(www / archive, members)
    return tars


@pytest.mark.parametrize("name", ["voc2007", "voc2012"])
def test_voc_download_and_convert(server, tmp_path, monkeypatch, name):
    base, www, _ = server
    objects = {"000001": [("dog", 0), ("person", 1), ("dog", 0)], "000002": [("car", 0)],
               "000003": [("tvmonitor", 0), ("chair", 1)], "000004": [("person", 0)], "000005": [("bird", 1)]}
    sides = {"voc2007": (["000001", "000002", "000004"], ["000003", "000005"]),
             "voc2012": (["000002", "000004"], ["000001", "000003", "000005"])}[name]
    serve_as(monkeypatch, REGISTRY[name], base, www, _voc_tars(www, name, objects, sides, np.random.default_rng(1)))
    man = prepare_dataset(name, {"image_size": 32}, tmp_path / "raw", download_root=tmp_path / "dl",
                          manual_root=tmp_path / "manual", progress=False)
    order = sides[0] + sides[1]
    assert man["n_items"] == 5 and len(man["class_names"]) == 20
    with open_dataset(tmp_path / "raw") as ds:
        labels = ds.labels()
        for row, i in enumerate(order):                       # difficult objects count; repeats count once
            assert sorted(np.array(VOC_CLASSES)[labels[row] == 1]) == sorted({o for o, _ in objects[i]})
        assert ds.partition().tolist() == [0] * len(sides[0]) + [1] * len(sides[1])
        assert ds.images([4]).shape == (1, 32, 32, 3)
        split = make_split(ds, REGISTRY[name].split_default, 0)
    assert split["query"].tolist() == list(range(len(sides[0]), 5))
    convert(name, {s.name: www / s.name for s in REGISTRY[name].sources}, tmp_path / "easy", difficult=False)
    with open_dataset(tmp_path / "easy") as ds:               # only objects not marked difficult
        for row, i in enumerate(order):
            assert sorted(np.array(VOC_CLASSES)[ds.labels()[row] == 1]) == sorted({o for o, h in objects[i] if not h})


def test_voc_unknown_class_is_one_line(tmp_path):
    xml = b"<annotation><object><name>unicorn</name></object></annotation>"
    make_tar(tmp_path / "voc.tar", [tar_file("VOCdevkit/VOC2007/ImageSets/Main/trainval.txt", b"a\n"),
                                    tar_file("VOCdevkit/VOC2007/ImageSets/Main/test.txt", b""),
                                    tar_file("VOCdevkit/VOC2007/Annotations/a.xml", xml)])
    files = {s.name: tmp_path / "voc.tar" for s in REGISTRY["voc2007"].sources}
    with pytest.raises(HashbenchError, match=r"a\.xml: object 'unicorn' is not a VOC class; use one of aeroplane"):
        convert("voc2007", files, tmp_path / "raw")


def test_stanford_dogs_download_and_convert(server, tmp_path, monkeypatch):
    import scipy.io

    base, www, _ = server
    rng = np.random.default_rng(2)
    breeds = ["n02085620-Chihuahua", "n02085782-Japanese_spaniel", "n02085936-Maltese_dog"]
    train = [(f"{breeds[k % 3]}/{breeds[k % 3][:9]}_{k}.jpg", k % 3 + 1) for k in range(6)]
    test = [(f"{breeds[k % 3]}/{breeds[k % 3][:9]}_{k}.jpg", k % 3 + 1) for k in range(6, 9)]

    def mat(rows):
        buf = io.BytesIO()
        scipy.io.savemat(buf, {"file_list": np.array([[f] for f, _ in rows], dtype=object),
                               "labels": np.array([[lab] for _, lab in rows])})
        return buf.getvalue()

    make_tar(www / "lists.tar", [tar_file("train_list.mat", mat(train)), tar_file("test_list.mat", mat(test))])
    make_tar(www / "images.tar", [tar_file(f"Images/{f}", jpeg(rng)) for f, _ in train + test])
    serve_as(monkeypatch, REGISTRY["stanford-dogs"], base, www, ["images.tar", "lists.tar"])
    man = prepare_dataset("stanford-dogs", {"image_size": 32}, tmp_path / "raw", download_root=tmp_path / "dl",
                          manual_root=tmp_path / "manual", progress=False)  # annotation.tar (optional) is not placed
    assert man["n_items"] == 9 and man["class_names"] == breeds
    with open_dataset(tmp_path / "raw") as ds:
        assert ds.single_label and ds.labels().argmax(1).tolist() == [k % 3 for k in range(9)]
        assert ds.partition().tolist() == [0] * 6 + [1] * 3
        assert ds.images([8]).shape == (1, 32, 32, 3)


def test_incomplete_cub_and_dogs_archives_are_one_line(tmp_path):
    make_tar(tmp_path / "CUB_200_2011.tgz", [tar_file("CUB_200_2011/images.txt", b"1 a/b.jpg\n")])
    with pytest.raises(HashbenchError, match=r"classes\.txt: not found; the CUB_200_2011\.tgz archive is incomplete"):
        convert("cub200", {"CUB_200_2011.tgz": tmp_path / "CUB_200_2011.tgz"}, tmp_path / "raw")
    make_tar(tmp_path / "lists.tar", [tar_file("train_list.mat", b"MATLAB 5.0 truncated")])
    with pytest.raises(HashbenchError, match=r"lists\.tar: train_list\.mat: not a readable MATLAB file"):
        convert("stanford-dogs", {"images.tar": tmp_path / "images.tar", "lists.tar": tmp_path / "lists.tar"},
                tmp_path / "raw2")


def test_copy_member_caps_size_and_refuses_unsafe_names(tmp_path):
    """copy_member writes a member under a name the converter builds, within a size cap."""
    from hashbench.datasets.archives import copy_member, reading_zip

    make_zip(tmp_path / "a.zip", [("x.jpg", b"1234")])
    with reading_zip(tmp_path / "a.zip") as zf:
        info = zf.getinfo("x.jpg")
        assert copy_member(tmp_path / "a.zip", zf, info, tmp_path / "out" / "x.jpg", 10) == 4
        with pytest.raises(HashbenchError, match=r"'?x\.jpg'? declares 4 bytes, over the 3-byte limit"):
            copy_member(tmp_path / "a.zip", zf, info, tmp_path / "out" / "y.jpg", 3)
        with pytest.raises(HashbenchError, match=r"not a plain file name"):
            copy_member(tmp_path / "a.zip", zf, info, tmp_path / "out" / "..", 10)
    assert (tmp_path / "out" / "x.jpg").read_bytes() == b"1234"
