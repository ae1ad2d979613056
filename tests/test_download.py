"""Download (over a local http.server on 127.0.0.1), manual placement, safe extraction, converters."""
import functools
import hashlib
import http.server
import io
import os
import stat
import tarfile
import threading
import zipfile

import numpy as np
import pytest

from hashbench import download
from hashbench.data import open_dataset
from hashbench.download import (
    SOURCES,
    convert_cifar10_binary,
    convert_nuswide,
    extract,
    fetch,
    prepare_dataset,
    read_nuswide_groundtruth,
    shared_data_dir,
)
from hashbench.errors import HashbenchError

CIFAR_NAME = "cifar-10-binary.tar.gz"


# ---------------------------------------------------------------------------------------------------- fixtures
class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):  # noqa: N802
        self.server.paths.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serve tmp_path/www on 127.0.0.1 (ephemeral port) from a thread; yields (base_url, www, requested paths)."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    www = tmp_path / "www"
    www.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(www)))
    httpd.paths = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", www, httpd.paths
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
    assert len(httpd.paths) <= 10  # bounded request count per test


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _cifar_records(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    planes = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    rec = np.concatenate([labels[:, None], planes.reshape(n, 3072)], axis=1)
    return rec.tobytes(), labels, planes


def _fake_cifar(path, per_batch=3):
    """A tiny cifar-10-binary.tar.gz: 5 train batches + test batch of `per_batch` records, and batches.meta.txt."""
    expect = {"labels": [], "planes": []}
    with tarfile.open(path, "w:gz") as tf:
        names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
        for k, name in enumerate(names):
            data, labels, planes = _cifar_records(per_batch, k)
            expect["labels"].append(labels)
            expect["planes"].append(planes)
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        meta = "\n".join(download.CIFAR10_CLASSES).encode() + b"\n\n"
        info = tarfile.TarInfo("cifar-10-batches-bin/batches.meta.txt")
        info.size = len(meta)
        tf.addfile(info, io.BytesIO(meta))
    return np.concatenate(expect["labels"]), np.concatenate(expect["planes"])


# ------------------------------------------------------------------------------------------------------- fetch
def test_fetch_ok_then_cached(server, tmp_path):
    base, www, paths = server
    payload = os.urandom(300_000)
    (www / "blob.bin").write_bytes(payload)
    dest = tmp_path / "dl"
    got = fetch(f"{base}/blob.bin", dest, md5=_md5(payload), expected_bytes=len(payload), progress=False)
    assert got == dest / "blob.bin" and got.read_bytes() == payload
    assert not list(dest.glob("*.part"))
    assert paths == ["/blob.bin"]
    again = fetch(f"{base}/blob.bin", dest, md5=_md5(payload), progress=False)
    assert again == got and paths == ["/blob.bin"]  # already present with the right md5: no request


def test_fetch_md5_mismatch(server, tmp_path):
    base, www, paths = server
    (www / "blob.bin").write_bytes(b"x" * 1000)
    dest = tmp_path / "dl"
    wrong = "0" * 32
    with pytest.raises(HashbenchError) as err:
        fetch(f"{base}/blob.bin", dest, md5=wrong, progress=False, manual_dir=tmp_path / "manual" / "toy")
    msg = str(err.value)
    assert "\n" not in msg and wrong in msg and _md5(b"x" * 1000) in msg and "blob.bin" in msg
    assert str(tmp_path / "manual" / "toy" / "blob.bin") in msg
    assert not list(dest.iterdir())  # neither the .part nor the final file is left
    with pytest.raises(HashbenchError, match="got 1000 bytes .* expected 999"):
        fetch(f"{base}/blob.bin", dest, expected_bytes=999, progress=False)
    assert not list(dest.iterdir())
    assert len(paths) == 2


def test_fetch_http_error_and_stale_file(server, tmp_path):
    base, www, paths = server
    with pytest.raises(HashbenchError, match=r"download failed \(.*\); place a manually downloaded copy at") as err:
        fetch(f"{base}/missing.tar.gz", tmp_path / "dl", progress=False)
    assert "\n" not in str(err.value) and not list((tmp_path / "dl").iterdir())
    (www / "f.txt").write_bytes(b"good")
    (tmp_path / "dl" / "f.txt").write_bytes(b"stale")  # a corrupt earlier download is replaced
    assert fetch(f"{base}/f.txt", tmp_path / "dl", md5=_md5(b"good"), progress=False).read_bytes() == b"good"
    assert len(paths) == 2


def test_manual_file_used_without_network(server, tmp_path):
    base, www, paths = server
    manual = tmp_path / "data" / "manual" / "cifar10"
    manual.mkdir(parents=True)
    (manual / CIFAR_NAME).write_bytes(b"manual copy")
    got = fetch(f"{base}/{CIFAR_NAME}", tmp_path / "dl", md5=_md5(b"manual copy"), progress=False,
                manual_dir=manual)
    assert got == manual / CIFAR_NAME and paths == []
    # also with an unreachable URL: no network is touched
    assert fetch("http://127.0.0.1:9/x/" + CIFAR_NAME, tmp_path / "dl", md5=_md5(b"manual copy"),
                 manual_dir=manual, progress=False) == got
    with pytest.raises(HashbenchError, match=r"manually placed file does not match \(expected md5 f+, got") as err:
        fetch(f"{base}/{CIFAR_NAME}", tmp_path / "dl", md5="f" * 32, manual_dir=manual, progress=False)
    assert str(manual / CIFAR_NAME) in str(err.value) and paths == []
    with pytest.raises(HashbenchError, match=r"does not match \(expected 5 bytes, got 11 bytes\)"):
        fetch(f"{base}/{CIFAR_NAME}", tmp_path / "dl", expected_bytes=5, manual_dir=manual, progress=False)


# ----------------------------------------------------------------------------------------------------- extract
def _zip(path, entries):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def _tar(path, members):
    with tarfile.open(path, "w:gz" if path.name.endswith("gz") else "w") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name, data=b"hello"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def _zip_link(name, target):
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def _dir(name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info, None


def test_extract_safe_archives(tmp_path):
    z = _zip(tmp_path / "ok.zip", [("a/b.txt", b"zip"), ("c.txt", b"c")])
    assert (extract(z, tmp_path / "oz") / "a" / "b.txt").read_bytes() == b"zip"
    t = _tar(tmp_path / "ok.tar.gz", [_dir("d"), _file("d/e.txt"), _dir("empty")])
    out = extract(t, tmp_path / "ot")
    assert (out / "d" / "e.txt").read_bytes() == b"hello" and (out / "empty").is_dir()
    t2 = _tar(tmp_path / "ok.tgz", [_file("x.txt")])
    assert (extract(t2, tmp_path / "ot2") / "x.txt").exists()
    t3 = _tar(tmp_path / "plain.tar", [_file("y.txt")])
    assert (extract(t3, tmp_path / "ot3") / "y.txt").exists()


@pytest.mark.parametrize("kind, entries, why", [
    ("zip", [("ok.txt", b"1"), ("../evil.txt", b"x")], "'..' in path"),
    ("zip", [("/abs/evil.txt", b"x")], "absolute path"),
    ("zip", [("sub\\..\\..\\evil.txt", b"x")], "'..' in path"),
    ("zip", [(_zip_link("inside", "ok.txt"), b"ok.txt")], "links are not allowed"),
    ("tar", [_file("ok.txt"), _link("escape", "../../outside")], "links are not allowed"),
    ("tar", [_link("abs", "/etc/passwd")], "links are not allowed"),
    ("tar", [_link("hard", "../x", tarfile.LNKTYPE)], "links are not allowed"),
    ("tar", [_file("inner.txt"), _link("same-folder", "inner.txt")], "links are not allowed"),
    ("tar", [_file("../up.txt")], "'..' in path"),
    ("tar", [_file("/tmp/abs.txt")], "absolute path"),
])
def test_extract_refuses_traversal(tmp_path, kind, entries, why):
    archive = _zip(tmp_path / "bad.zip", entries) if kind == "zip" else _tar(tmp_path / "bad.tar.gz", entries)
    dest = tmp_path / "out" / "inner"
    with pytest.raises(HashbenchError, match=f"refusing to extract member .*{why}") as err:
        extract(archive, dest)
    assert "\n" not in str(err.value) and str(archive) in str(err.value)
    assert not dest.exists()  # nothing written (all members are checked first)
    assert not (tmp_path / "out" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()


def _link_chain_tar(archive):
    """Symbolic links whose chained resolution outruns PATH_MAX, so os.path.realpath stops resolving and tarfile's
    "data" filter (before Python 3.11.13 / 3.12.11, CVE-2025-4517) lets a later link point four levels up; each link
    text on its own looks harmless."""
    long_dir, steps, members, inner = "d" * 247, "abcdefghijklmnop", [], ""
    for step in steps:
        members += [_dir(os.path.join(inner, long_dir)), _link(os.path.join(inner, step), long_dir)]
        inner = os.path.join(inner, long_dir)
    deep = os.path.join(*steps, "l" * 254)
    members += [_link(deep, "../" * len(steps)), _link("escape", deep + "/../../../../"),
                _file("escape/pwned", b"owned")]
    return _tar(archive, members)


def test_extract_refuses_a_link_chain_that_escapes_the_filter(tmp_path):
    archive = _link_chain_tar(tmp_path / "chain.tar.gz")
    assert archive.stat().st_size < 4096  # a few KB: nothing hints at the attack
    dest = tmp_path / "a" / "b" / "c" / "dest"
    with pytest.raises(HashbenchError, match=r"refusing to extract member .*links are not allowed"):
        extract(archive, dest)
    assert not dest.exists() and not list(tmp_path.rglob("pwned"))


def test_extract_caps_member_and_total_size(tmp_path):
    big = tmp_path / "bomb.zip"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * 5_000_000)
    assert big.stat().st_size < 10_000
    with pytest.raises(HashbenchError, match=r"'zeros.bin' \(5000000 bytes, over the 1000000-byte limit per member"):
        extract(big, tmp_path / "o1", max_member=1_000_000)
    many = _tar(tmp_path / "many.tar", [_file(f"f{i}.txt", b"x" * 600) for i in range(3)])
    with pytest.raises(HashbenchError, match=r"'f1.txt' \(the archive unpacks to over 1000 bytes"):
        extract(many, tmp_path / "o2", max_total=1000)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_reading_a_member_that_declares_too_much_is_refused_before_reading(tmp_path, monkeypatch):
    archive = _zip(tmp_path / "Groundtruth.zip", [("AllLabels/Labels_sky.txt", b"0\n" * 600_000)])
    monkeypatch.setattr(download, "MAX_READ_BYTES", 1_000_000)
    with pytest.raises(HashbenchError, match=r"declares 1200000 bytes, over the 1000000-byte limit"):
        read_nuswide_groundtruth(archive, ["sky"])


def test_extract_unknown_and_corrupt(tmp_path):
    (tmp_path / "a.rar").write_bytes(b"x")
    with pytest.raises(HashbenchError, match="unknown archive type"):
        extract(tmp_path / "a.rar", tmp_path / "o")
    (tmp_path / "b.zip").write_bytes(b"not a zip")
    with pytest.raises(HashbenchError, match="not a readable archive"):
        extract(tmp_path / "b.zip", tmp_path / "o")


# -------------------------------------------------------------------------------------------------- converters
def test_cifar_binary_download_and_convert(server, tmp_path):
    base, www, paths = server
    labels, planes = _fake_cifar(www / CIFAR_NAME)
    md5 = _md5((www / CIFAR_NAME).read_bytes())
    archive = fetch(f"{base}/{CIFAR_NAME}", tmp_path / "dl", md5=md5, progress=False)
    man = convert_cifar10_binary(archive, tmp_path / "raw")
    assert man["n_items"] == 18 and man["image_shape"] == [32, 32, 3] and man["class_names"][0] == "airplane"
    with open_dataset(tmp_path / "raw", verify=True) as ds:
        assert ds.single_label and ds.labels().argmax(axis=1).tolist() == labels.tolist()
        np.testing.assert_array_equal(ds.images(np.arange(18)), planes.transpose(0, 2, 3, 1))  # R,G,B planes
        assert ds.partition().tolist() == [0] * 15 + [1] * 3  # test_batch = query side
    assert paths == [f"/{CIFAR_NAME}"]


def test_prepare_dataset_uses_manual_copy(tmp_path, monkeypatch):
    manual = tmp_path / "manual" / "cifar10"
    manual.mkdir(parents=True)
    _fake_cifar(manual / CIFAR_NAME, per_batch=2)
    entry = {"name": CIFAR_NAME, "url": "http://127.0.0.1:9/nowhere/" + CIFAR_NAME,
             "md5": _md5((manual / CIFAR_NAME).read_bytes()), "bytes": None}
    monkeypatch.setitem(SOURCES, "cifar10", {**SOURCES["cifar10"], "files": [entry]})
    man = prepare_dataset("cifar10", {"seed": 0}, tmp_path / "raw", download_root=tmp_path / "dl",
                          manual_root=tmp_path / "manual", progress=False)
    assert man["n_items"] == 12 and man["name"] == "cifar10"
    with pytest.raises(HashbenchError, match=r"cifar10\.bogus: unknown key"):
        prepare_dataset("cifar10", {"bogus": 1}, tmp_path / "raw2", manual_root=tmp_path / "manual")
    with pytest.raises(HashbenchError, match=r"dataset: 'imagenet' is not allowed; use one of mnist5k"):
        prepare_dataset("imagenet", {}, tmp_path / "raw3")
    with pytest.raises(HashbenchError, match=r"'wikipedia' has download sources but no converter yet"):
        prepare_dataset("wikipedia", {}, tmp_path / "raw4")


def test_cifar_corrupt_archive(tmp_path):
    with tarfile.open(tmp_path / CIFAR_NAME, "w:gz") as tf:
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = 100
            tf.addfile(info, io.BytesIO(b"\0" * 100))
    with pytest.raises(HashbenchError, match="not a multiple of the 3073-byte record"):
        convert_cifar10_binary(tmp_path / CIFAR_NAME, tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


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


def test_nuswide_bad_value_is_reported_not_fatal(tmp_path):
    concepts = ["lake", "sky", "zebra"]
    labels = _fake_groundtruth(tmp_path / "Groundtruth.zip", concepts, bad_line=7)
    _zip(tmp_path / "ConceptsList.zip", [("Concepts81.txt", "\r\n".join(concepts) + "\r\n")])
    with pytest.warns(UserWarning, match=r"Labels_lake_Train\.txt: 1 bad label value\(s\) treated as 0 "
                                         r"\(-1130179 at line 7\)"):
        train = read_nuswide_groundtruth(tmp_path / "Groundtruth.zip", concepts, "train")
    assert train.shape == (30, 3) and train[6, 0] == 0
    with pytest.warns(UserWarning):
        man = convert_nuswide(tmp_path / "Groundtruth.zip", tmp_path / "ConceptsList.zip", tmp_path / "raw",
                              subset="all81")
    keep = labels.any(axis=1)
    assert man["n_items"] == int(keep.sum()) and man["modalities"] == []
    order = np.argsort(-labels.sum(axis=0), kind="stable")
    assert man["class_names"] == [concepts[j] for j in order]
    with open_dataset(tmp_path / "raw") as ds:
        np.testing.assert_array_equal(ds.labels(), labels[keep][:, order])
        np.testing.assert_array_equal(ds.array("source_index"), np.flatnonzero(keep))


def test_nuswide_image_list(tmp_path):
    concepts = ["lake", "sky"]
    labels = _fake_groundtruth(tmp_path / "Groundtruth.zip", concepts)
    _zip(tmp_path / "ConceptsList.zip", [("ConceptsList/Concepts81.txt", "\n".join(concepts) + "\n")])
    lines = [f"Flickr\\c{i % 3}\\{i:04d}_1.jpg" for i in range(len(labels))]
    _zip(tmp_path / "ImageList.zip", [("ImageList/Imagelist.txt", "\r\n".join(lines) + "\r\n")])
    man = convert_nuswide(tmp_path / "Groundtruth.zip", tmp_path / "ConceptsList.zip", tmp_path / "raw",
                          subset="all81", image_list_zip=tmp_path / "ImageList.zip", check_train_test=False)
    keep = np.flatnonzero(labels.any(axis=1))
    assert man["modalities"] == ["image"]
    with open_dataset(tmp_path / "raw") as ds:
        assert ds.image_paths() == [lines[i].replace("\\", "/") for i in keep]
        assert ds.image_root == "images"
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(HashbenchError, match=r"bad\.zip: not a readable zip"):
        convert_nuswide(tmp_path / "Groundtruth.zip", tmp_path / "ConceptsList.zip", tmp_path / "raw2",
                        subset="all81", image_list_zip=tmp_path / "bad.zip", check_train_test=False)


def test_nuswide_tags(tmp_path):
    concepts = ["lake", "sky"]
    labels = _fake_groundtruth(tmp_path / "Groundtruth.zip", concepts)
    _zip(tmp_path / "ConceptsList.zip", [("Concepts81.txt", "\n".join(concepts) + "\n")])
    n = len(labels)
    bag = (np.random.default_rng(2).random((n, 4)) < 0.4).astype(int)
    with zipfile.ZipFile(tmp_path / "NUS_WID_Tags.zip", "w") as zf:
        zf.writestr("NUS_WID_Tags/All_Tags.txt", "".join(f"{i:04d}_{i}      t{i % 5} sky t{i % 5}\r\n"
                                                         for i in range(n)))
        zf.writestr("NUS_WID_Tags/TagList1k.txt", "sky\nlake\nwater\nsun\n")
        zf.writestr("NUS_WID_Tags/AllTags1k.txt", "".join("\t".join(map(str, row)) + "\t\n" for row in bag))
    man = convert_nuswide(tmp_path / "Groundtruth.zip", tmp_path / "ConceptsList.zip", tmp_path / "raw",
                          subset="all81", tags_zip=tmp_path / "NUS_WID_Tags.zip", check_train_test=False)
    keep = np.flatnonzero(labels.any(axis=1))
    assert sorted(man["modalities"]) == ["tags", "text"]
    with open_dataset(tmp_path / "raw") as ds:
        assert ds.tags([0]) == [[f"t{keep[0] % 5}", "sky"]]
        np.testing.assert_array_equal(ds.text(), bag[keep])
        assert ds.text_vocab() == ["sky", "lake", "water", "sun"]
    _zip(tmp_path / "short.zip", [("All_Tags.txt", "a x\n"), ("TagList1k.txt", "sky\n"), ("AllTags1k.txt", "1\n")])
    with pytest.raises(HashbenchError, match=rf"short\.zip: All_Tags\.txt has 1 lines for {n} label rows"):
        convert_nuswide(tmp_path / "Groundtruth.zip", tmp_path / "ConceptsList.zip", tmp_path / "raw2",
                        subset="all81", tags_zip=tmp_path / "short.zip", check_train_test=False)


def test_nuswide_real_groundtruth(tmp_path):
    shared = shared_data_dir() / "nus-wide"
    gt, cl = shared / "Groundtruth.zip", shared / "ConceptsList.zip"
    if not gt.is_file() or not cl.is_file():
        pytest.skip(f"NUS-WIDE Groundtruth.zip / ConceptsList.zip not found under {shared}")
    assert download.file_md5(gt) == SOURCES["nuswide"]["files"][0]["md5"]
    assert download.file_md5(cl) == SOURCES["nuswide"]["files"][1]["md5"]
    with pytest.warns(UserWarning, match=r"Labels_lake_Train\.txt: 1 bad label value\(s\) treated as 0 "
                                         r"\(-1130179 at line 78373\)"):
        man = convert_nuswide(gt, cl, tmp_path / "raw", subset="top21")
    assert man["n_items"] == 195834 and man["class_names"][:3] == ["sky", "clouds", "person"]
    with open_dataset(tmp_path / "raw") as ds:
        assert ds.labels().sum(axis=0)[:3].tolist() == [74190, 54087, 51577]
    tc10 = convert_nuswide(gt, cl, tmp_path / "tc10", subset="tc10", check_train_test=False)
    assert tc10["n_items"] == 186577


def test_sources_table_complete():
    for name in ("cifar10", "mirflickr25k", "nuswide", "cub200", "stanford-dogs", "voc2007", "voc2012", "wikipedia"):
        assert SOURCES[name]["files"] and SOURCES[name]["license"]
        for entry in SOURCES[name]["files"]:
            assert entry["url"].startswith("http") and (entry["md5"] is None or len(entry["md5"]) == 32)
    assert SOURCES["cifar10"]["files"][0]["md5"] == "c32a1d4ab5d03f1284b67883e8d87530"
    assert [f["md5"] for f in SOURCES["nuswide"]["files"][:2]] == ["a95fb76f7c8300e92ece0a90dd0ced4d",
                                                                   "5b877de6bfb0f7ba558f90d77b860348"]


# ------------------------------------------------------------------------------------------------ MIRFLICKR-25K
MIR_BASE = ("animals baby bird car clouds dog female flower food indoor lake male night people plant_life portrait "
            "river sea sky structures sunset transport tree water").split()
MIR_R1 = "baby bird car clouds dog female flower male night people portrait river sea tree".split()


def test_mirflickr_download_and_convert(server, tmp_path, monkeypatch, mirflickr_archives):
    base, www, paths = server
    mirflickr_archives(www, n=12)
    files = [{"name": f, "url": f"{base}/{f}", "md5": _md5((www / f).read_bytes()), "bytes": None}
             for f in ("mirflickr25k.zip", "mirflickr25k_annotations_v080.zip")]
    monkeypatch.setitem(SOURCES, "mirflickr25k", {**SOURCES["mirflickr25k"], "files": files})
    man = prepare_dataset("mirflickr25k", {"seed": 0, "image_size": 32}, tmp_path / "raw",
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


def test_mirflickr_bad_annotation_and_missing_image(tmp_path, mirflickr_archives):
    mirflickr_archives(tmp_path, n=12)
    _zip(tmp_path / "bad.zip", [("sky.txt", "1\n13\n")])
    with pytest.raises(HashbenchError, match=r"^bad\.zip:sky\.txt line 2: '13' is not an image id; ids are 1\.\.12$"):
        download.convert_mirflickr25k(tmp_path / "mirflickr25k.zip", tmp_path / "bad.zip", tmp_path / "raw")
    assert not (tmp_path / "raw").exists()  # nothing written
    _zip(tmp_path / "holes.zip", [("mirflickr/im1.jpg", b"x"), ("mirflickr/im3.jpg", b"x")])
    with pytest.raises(HashbenchError, match=r"not im1\.jpg\.\.im2\.jpg \(first missing: im2\.jpg\)"):
        download.convert_mirflickr25k(tmp_path / "holes.zip", tmp_path / "mirflickr25k_annotations_v080.zip",
                                      tmp_path / "raw2")


def test_mirflickr_label_order_on_the_real_label_lists():
    """Sorted annotation file names put each `_r1` subset right after its concept: on the real 25,000 labels
    (DeepHash-pytorch's lists) every `_r1` column lies inside the column before it, except 4 images of people_r1
    that the official files do not list under people; 419 images have no label."""
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


# -------------------------------------------------------------------------------------------------- CUB, VOC
def _jpeg(rng, h=9, w=12):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _serve_as(monkeypatch, name, base, www, files):
    entries = [{"name": f, "url": f"{base}/{f}", "md5": _md5((www / f).read_bytes()), "bytes": None} for f in files]
    monkeypatch.setitem(SOURCES, name, {**SOURCES[name], "files": entries})


def test_cub200_download_and_convert(server, tmp_path, monkeypatch):
    from hashbench.splits import make_split

    base, www, _ = server
    rng = np.random.default_rng(0)
    classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]
    rows = [(i, classes[(i - 1) % 3], (i - 1) % 3 + 1, int(i % 4 != 0)) for i in range(1, 13)]
    members = [("CUB_200_2011/classes.txt", "".join(f"{j + 1} {c}\n" for j, c in enumerate(classes)).encode()),
               ("CUB_200_2011/images.txt", "".join(f"{i} {c}/img_{i}.jpg\n" for i, c, _, _ in rows).encode()),
               ("CUB_200_2011/image_class_labels.txt", "".join(f"{i} {k}\n" for i, _, k, _ in rows).encode()),
               ("CUB_200_2011/train_test_split.txt", "".join(f"{i} {t}\n" for i, _, _, t in rows).encode())]
    members += [(f"CUB_200_2011/images/{c}/img_{i}.jpg", _jpeg(rng, 8 + i, 10)) for i, c, _, _ in rows]
    _tar(www / "CUB_200_2011.tgz", [_file(name, data) for name, data in members])
    _serve_as(monkeypatch, "cub200", base, www, ["CUB_200_2011.tgz"])
    man = prepare_dataset("cub200", {"image_size": 32}, tmp_path / "raw", download_root=tmp_path / "dl",
                          manual_root=tmp_path / "manual", progress=False)
    assert man["n_items"] == 12 and man["class_names"] == classes and man["image_shape"] == [32, 32, 3]
    with open_dataset(tmp_path / "raw") as ds:
        assert ds.single_label and ds.labels().argmax(1).tolist() == [(i - 1) % 3 for i in range(1, 13)]
        assert ds.partition().tolist() == [int(i % 4 == 0) for i in range(1, 13)]     # test images = query side
        assert ds.images([0, 11]).shape == (2, 32, 32, 3)
        split = make_split(ds, download.REAL_SPLIT_DEFAULTS["cub200"], 0)
    assert split["query"].tolist() == [3, 7, 11] and split["train"].tolist() == split["database"].tolist()


@pytest.mark.parametrize("name", ["voc2007", "voc2012"])
def test_voc_download_and_convert(server, tmp_path, monkeypatch, name):
    from hashbench.splits import make_split

    base, www, _ = server
    rng = np.random.default_rng(1)
    year = name[-4:]
    objects = {"000001": ["dog", "person", "dog"], "000002": ["car"], "000003": ["tvmonitor", "chair"],
               "000004": ["person"], "000005": ["bird"]}
    sides = {"voc2007": (["000001", "000002", "000004"], ["000003", "000005"]),
             "voc2012": (["000002", "000004"], ["000001", "000003", "000005"])}[name]
    root = f"VOCdevkit/VOC{year}"
    train_side, query_side = download.VOC_SIDES[name]
    tars = {"voc2007": ["VOCtrainval_06-Nov-2007.tar", "VOCtest_06-Nov-2007.tar"],
            "voc2012": ["VOCtrainval_11-May-2012.tar"]}[name]
    for t, archive in enumerate(tars):
        members = []
        for side, ids in zip((train_side, query_side), sides):
            if len(tars) == 1 or t == (side == query_side):   # 2007: trainval and test come in separate tars
                members.append(_file(f"{root}/ImageSets/Main/{side}.txt", "".join(f"{i}\n" for i in ids).encode()))
                for i in ids:
                    xml = "<annotation>" + "".join(f"<object><name>{o}</name><difficult>{k % 2}</difficult></object>"
                                                   for k, o in enumerate(objects[i])) + "</annotation>"
                    members += [_file(f"{root}/Annotations/{i}.xml", xml.encode()),
                                _file(f"{root}/JPEGImages/{i}.jpg", _jpeg(rng))]
        _tar(www / archive, members)
    _serve_as(monkeypatch, name, base, www, tars)
    man = prepare_dataset(name, {"image_size": 32}, tmp_path / "raw", download_root=tmp_path / "dl",
                          manual_root=tmp_path / "manual", progress=False)
    order = sides[0] + sides[1]
    assert man["n_items"] == 5 and len(man["class_names"]) == 20
    with open_dataset(tmp_path / "raw") as ds:
        labels = ds.labels()
        for row, i in enumerate(order):                       # difficult objects count; repeats count once
            assert sorted(np.array(download.VOC_CLASSES)[labels[row] == 1]) == sorted(set(objects[i]))
        assert ds.partition().tolist() == [0] * len(sides[0]) + [1] * len(sides[1])
        assert ds.images([4]).shape == (1, 32, 32, 3)
        split = make_split(ds, download.REAL_SPLIT_DEFAULTS[name], 0)
    assert split["query"].tolist() == list(range(len(sides[0]), 5))


def test_voc_unknown_class_is_one_line(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2007"
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "Annotations").mkdir()
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("a\n")
    (root / "ImageSets" / "Main" / "test.txt").write_text("")
    (root / "Annotations" / "a.xml").write_text("<annotation><object><name>unicorn</name></object></annotation>")
    with tarfile.open(tmp_path / "voc.tar", "w") as tf:
        tf.add(tmp_path / "VOCdevkit", arcname="VOCdevkit")
    with pytest.raises(HashbenchError, match=r"a\.xml: object 'unicorn' is not a VOC class; use one of aeroplane"):
        download.convert_voc([tmp_path / "voc.tar"], tmp_path / "raw", "voc2007")


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

    _tar(www / "lists.tar", [_file("train_list.mat", mat(train)), _file("test_list.mat", mat(test))])
    _tar(www / "images.tar", [_file(f"Images/{f}", _jpeg(rng)) for f, _ in train + test])
    _serve_as(monkeypatch, "stanford-dogs", base, www, ["images.tar", "lists.tar"])
    monkeypatch.setitem(SOURCES["stanford-dogs"], "files", SOURCES["stanford-dogs"]["files"]
                        + [{"name": "annotation.tar", "optional": True, "url": f"{base}/missing", "md5": None,
                            "bytes": None}])
    man = prepare_dataset("stanford-dogs", {"image_size": 32}, tmp_path / "raw", download_root=tmp_path / "dl",
                          manual_root=tmp_path / "manual", progress=False)
    assert man["n_items"] == 9 and man["class_names"] == breeds
    with open_dataset(tmp_path / "raw") as ds:
        assert ds.single_label and ds.labels().argmax(1).tolist() == [k % 3 for k in range(9)]
        assert ds.partition().tolist() == [0] * 6 + [1] * 3
        assert ds.images([8]).shape == (1, 32, 32, 3)


def test_incomplete_cub_and_dogs_archives_are_one_line(tmp_path):
    _tar(tmp_path / "CUB_200_2011.tgz", [_file("CUB_200_2011/images.txt", b"1 a/b.jpg\n")])
    with pytest.raises(HashbenchError, match=r"classes\.txt: not found; the CUB_200_2011\.tgz archive is incomplete"):
        download.convert_cub200(tmp_path / "CUB_200_2011.tgz", tmp_path / "raw")
    _tar(tmp_path / "lists.tar", [_file("train_list.mat", b"MATLAB 5.0 truncated")])
    with pytest.raises(HashbenchError, match=r"lists\.tar: train_list\.mat is not readable"):
        download.convert_stanford_dogs(tmp_path / "images.tar", tmp_path / "lists.tar", tmp_path / "raw2")
