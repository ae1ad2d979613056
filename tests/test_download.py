"""Fetching (over a local http.server on 127.0.0.1) with checksums, manual placement, and safe extraction."""
import os
import tarfile
import zipfile

import pytest
from helpers import make_tar, make_zip, md5, tar_dir, tar_file, tar_link, zip_link

from hashbench.download import extract, fetch
from hashbench.errors import HashbenchError

CIFAR_NAME = "cifar-10-binary.tar.gz"


# ------------------------------------------------------------------------------------------------------- fetch
def test_fetch_ok_then_cached(server, tmp_path):
    base, www, paths = server
    payload = os.urandom(300_000)
    (www / "blob.bin").write_bytes(payload)
    dest = tmp_path / "dl"
    got = fetch(f"{base}/blob.bin", dest, md5=md5(payload), expected_bytes=len(payload), progress=False)
    assert got == dest / "blob.bin" and got.read_bytes() == payload
    assert not list(dest.glob("*.part"))
    assert paths == ["/blob.bin"]
    again = fetch(f"{base}/blob.bin", dest, md5=md5(payload), progress=False)
    assert again == got and paths == ["/blob.bin"]  # already present with the right md5: no request


def test_fetch_md5_mismatch(server, tmp_path):
    base, www, paths = server
    (www / "blob.bin").write_bytes(b"x" * 1000)
    dest = tmp_path / "dl"
    wrong = "0" * 32
    with pytest.raises(HashbenchError) as err:
        fetch(f"{base}/blob.bin", dest, md5=wrong, progress=False, manual_dir=tmp_path / "manual" / "toy")
    msg = str(err.value)
    assert "\n" not in msg and wrong in msg and md5(b"x" * 1000) in msg and "blob.bin" in msg
    assert str(tmp_path / "manual" / "toy" / "blob.bin") in msg
    assert not list(dest.iterdir())  # neither the .part nor the final file is left
    with pytest.raises(HashbenchError, match="got 1000 bytes .* expected 999"):
        fetch(f"{base}/blob.bin", dest, expected_bytes=999, progress=False)
    assert not list(dest.iterdir())
    assert len(paths) == 2


def test_fetch_http_error_and_staletar_file(server, tmp_path):
    base, www, paths = server
    with pytest.raises(HashbenchError, match=r"download failed \(.*\); place a manually downloaded copy at") as err:
        fetch(f"{base}/missing.tar.gz", tmp_path / "dl", progress=False)
    assert "\n" not in str(err.value) and not list((tmp_path / "dl").iterdir())
    (www / "f.txt").write_bytes(b"good")
    (tmp_path / "dl" / "f.txt").write_bytes(b"stale")  # a corrupt earlier download is replaced
    assert fetch(f"{base}/f.txt", tmp_path / "dl", md5=md5(b"good"), progress=False).read_bytes() == b"good"
    assert len(paths) == 2


def test_manual_file_used_without_network(server, tmp_path):
    base, www, paths = server
    manual = tmp_path / "data" / "manual" / "cifar10"
    manual.mkdir(parents=True)
    (manual / CIFAR_NAME).write_bytes(b"manual copy")
    got = fetch(f"{base}/{CIFAR_NAME}", tmp_path / "dl", md5=md5(b"manual copy"), progress=False,
                manual_dir=manual)
    assert got == manual / CIFAR_NAME and paths == []
    # also with an unreachable URL: no network is touched
    assert fetch("http://127.0.0.1:9/x/" + CIFAR_NAME, tmp_path / "dl", md5=md5(b"manual copy"),
                 manual_dir=manual, progress=False) == got
    with pytest.raises(HashbenchError, match=r"manually placed file does not match \(expected md5 f+, got") as err:
        fetch(f"{base}/{CIFAR_NAME}", tmp_path / "dl", md5="f" * 32, manual_dir=manual, progress=False)
    assert str(manual / CIFAR_NAME) in str(err.value) and paths == []
    with pytest.raises(HashbenchError, match=r"does not match \(expected 5 bytes, got 11 bytes\)"):
        fetch(f"{base}/{CIFAR_NAME}", tmp_path / "dl", expected_bytes=5, manual_dir=manual, progress=False)


# ----------------------------------------------------------------------------------------------------- extract
def test_extract_safe_archives(tmp_path):
    z = make_zip(tmp_path / "ok.zip", [("a/b.txt", b"zip"), ("c.txt", b"c")])
    assert (extract(z, tmp_path / "oz") / "a" / "b.txt").read_bytes() == b"zip"
    t = make_tar(tmp_path / "ok.tar.gz", [tar_dir("d"), tar_file("d/e.txt"), tar_dir("empty")])
    out = extract(t, tmp_path / "ot")
    assert (out / "d" / "e.txt").read_bytes() == b"hello" and (out / "empty").is_dir()
    t2 = make_tar(tmp_path / "ok.tgz", [tar_file("x.txt")])
    assert (extract(t2, tmp_path / "ot2") / "x.txt").exists()
    t3 = make_tar(tmp_path / "plain.tar", [tar_file("y.txt")])
    assert (extract(t3, tmp_path / "ot3") / "y.txt").exists()


@pytest.mark.parametrize("kind, entries, why", [
    ("zip", [("ok.txt", b"1"), ("../evil.txt", b"x")], "'..' in path"),
    ("zip", [("/abs/evil.txt", b"x")], "absolute path"),
    ("zip", [("sub\\..\\..\\evil.txt", b"x")], "'..' in path"),
    ("zip", [(zip_link("inside", "ok.txt"), b"ok.txt")], "links are not allowed"),
    ("tar", [tar_file("ok.txt"), tar_link("escape", "../../outside")], "links are not allowed"),
    ("tar", [tar_link("abs", "/etc/passwd")], "links are not allowed"),
    ("tar", [tar_link("hard", "../x", tarfile.LNKTYPE)], "links are not allowed"),
    ("tar", [tar_file("inner.txt"), tar_link("same-folder", "inner.txt")], "links are not allowed"),
    ("tar", [tar_file("../up.txt")], "'..' in path"),
    ("tar", [tar_file("/tmp/abs.txt")], "absolute path"),
])
def test_extract_refuses_traversal(tmp_path, kind, entries, why):
    archive = make_zip(tmp_path / "bad.zip", entries) if kind == "zip" else make_tar(tmp_path / "bad.tar.gz", entries)
    dest = tmp_path / "out" / "inner"
    with pytest.raises(HashbenchError, match=f"refusing to extract member .*{why}") as err:
        extract(archive, dest)
    assert "\n" not in str(err.value) and str(archive) in str(err.value)
    assert not dest.exists()  # nothing written (all members are checked first)
    assert not (tmp_path / "out" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()


def link_chain_tar(archive):
    """Symbolic links whose chained resolution outruns PATH_MAX, so os.path.realpath stops resolving and tarfile's
    "data" filter (before Python 3.11.13 / 3.12.11, CVE-2025-4517) lets a later link point four levels up; each link
    text on its own looks harmless."""
    long_dir, steps, members, inner = "d" * 247, "abcdefghijklmnop", [], ""
    for step in steps:
        members += [tar_dir(os.path.join(inner, long_dir)), tar_link(os.path.join(inner, step), long_dir)]
        inner = os.path.join(inner, long_dir)
    deep = os.path.join(*steps, "l" * 254)
    members += [tar_link(deep, "../" * len(steps)), tar_link("escape", deep + "/../../../../"),
                tar_file("escape/pwned", b"owned")]
    return make_tar(archive, members)


def test_extract_refuses_a_link_chain_that_escapes_the_filter(tmp_path):
    archive = link_chain_tar(tmp_path / "chain.tar.gz")
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
    many = make_tar(tmp_path / "many.tar", [tar_file(f"f{i}.txt", b"x" * 600) for i in range(3)])
    with pytest.raises(HashbenchError, match=r"'f1.txt' \(the archive unpacks to over 1000 bytes"):
        extract(many, tmp_path / "o2", max_total=1000)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_extract_unknown_and_corrupt(tmp_path):
    (tmp_path / "a.rar").write_bytes(b"x")
    with pytest.raises(HashbenchError, match="unknown archive type"):
        extract(tmp_path / "a.rar", tmp_path / "o")
    (tmp_path / "b.zip").write_bytes(b"not a zip")
    with pytest.raises(HashbenchError, match="not a readable archive"):
        extract(tmp_path / "b.zip", tmp_path / "o")
