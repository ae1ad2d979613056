"""Fetching with checksums and safe archive extraction: nothing else (every dataset lives in hashbench.datasets).

Nothing here runs on the build machines (no network); it is the code path for users who have the data.

Manually placed archives: put the file, under its official name, in ``data/manual/<dataset>/<archive name>``
(e.g. ``data/manual/cifar10/cifar-10-binary.tar.gz``). :func:`fetch` uses it without any network access when its
md5 matches (or when no md5 is published), and refuses it with a one-line error when it does not.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import re
import stat
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path

from tqdm import tqdm

from .data import file_md5
from .errors import HashbenchError

MANUAL_ROOT = Path("data/manual")
DOWNLOAD_ROOT = Path("data/download")
USER_AGENT = "hashbench/0.1 (+https://github.com/)"


# ------------------------------------------------------------------------------------------------------- fetch
def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def fetch(url: str, dest_dir, md5: str | None = None, expected_bytes: int | None = None, progress: bool = True,
          *, filename: str | None = None, manual_dir=None, timeout: float = 60.0) -> Path:
    """Return a local copy of `url`: a manually placed file in `manual_dir`, an earlier download in `dest_dir`,
    or a fresh download (streamed to ``<name>.part``, renamed when its size and md5 are right; no resume)."""
    filename = filename or posixpath.basename(urllib.parse.urlparse(url).path)
    if not filename or "/" in filename or filename in (".", ".."):
        raise HashbenchError(f"{url}: cannot tell the file name; pass filename=")
    md5 = md5.lower() if md5 else None
    dest_dir = Path(dest_dir)
    dest = dest_dir / filename
    manual = Path(manual_dir) / filename if manual_dir is not None else None
    place_hint = f"place a manually downloaded copy at {manual}" if manual else \
        f"place a manually downloaded copy at {MANUAL_ROOT}/<dataset>/{filename}"

    def good(path: Path) -> tuple[bool, str]:
        if expected_bytes is not None and path.stat().st_size != expected_bytes:
            return False, f"{path.stat().st_size} bytes"
        if md5 is None:
            return True, ""
        actual = file_md5(path)
        return actual == md5, actual

    if manual is not None and manual.is_file():
        ok, actual = good(manual)
        if not ok:
            expected = ", ".join(([f"md5 {md5}"] if md5 else []) +
                                 ([f"{expected_bytes} bytes"] if expected_bytes is not None else []))
            raise HashbenchError(f"{manual}: manually placed file does not match (expected {expected}, got "
                                 f"{actual}); replace it with the official {filename}")
        return manual
    if dest.is_file():
        if good(dest)[0]:
            return dest
        dest.unlink()  # a stale or corrupt earlier download: fetch again
    dest_dir.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(filename + ".part")
    if part.exists():
        part.unlink()
    digest = hashlib.md5()
    size = 0
    try:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        with urllib.request.urlopen(request, timeout=timeout) as response, open(part, "wb") as out:
            total = response.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else expected_bytes
            with tqdm(total=total, unit="B", unit_scale=True, desc=filename, disable=not progress,
                      leave=False) as bar:
                while True:
                    block = response.read(1 << 20)
                    if not block:
                        break
                    out.write(block)
                    digest.update(block)
                    size += len(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError, ValueError) as err:
        if part.exists():
            part.unlink()
        reason = getattr(err, "reason", None) or err
        raise HashbenchError(f"{url}: download failed ({_one_line(reason)}); {place_hint}") from None
    except BaseException:
        if part.exists():
            part.unlink()
        raise
    if expected_bytes is not None and size != expected_bytes:
        part.unlink()
        raise HashbenchError(f"{filename}: got {size} bytes from {url}, expected {expected_bytes}; {place_hint}")
    actual = digest.hexdigest()
    if md5 is not None and actual != md5:
        part.unlink()
        raise HashbenchError(f"{filename}: md5 mismatch (expected {md5}, got {actual}) from {url}; {place_hint}")
    os.replace(part, dest)
    return dest


# ----------------------------------------------------------------------------------------------------- extract
# Caps on what one archive may unpack to. Several archives have no published checksum (NUS-WIDE's zips, Wikipedia),
# so a crafted one must not fill the disk or the memory: the largest member of any supported archive is well under
# 1 GiB and the largest archive (COCO's train2014.zip) unpacks to about 13 GiB.
MAX_MEMBER_BYTES = 4 << 30
MAX_TOTAL_BYTES = 64 << 30
MAX_READ_BYTES = 1 << 30  # a member read into memory (label lists, tag files)


def _unsafe_name(name: str) -> str | None:
    """Why an archive member name is unsafe, or None."""
    if not name:
        return "empty name"
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    parts = re.split(r"[\\/]+", name)
    if ".." in parts:
        return "'..' in path"
    return None


def _archive_kind(archive: Path) -> str:
    name = archive.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz")):
        return "tar"
    raise HashbenchError(f"{archive}: unknown archive type; use .zip, .tar, .tgz or .tar.gz")


def _zip_entries(zf: zipfile.ZipFile):
    """(name, kind, size, open) per member; kind is dir, file, link or special."""
    for info in zf.infolist():
        file_type = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip records no Unix mode
        kind = "link" if file_type == stat.S_IFLNK else "dir" if info.is_dir() else \
            "special" if file_type not in (0, stat.S_IFREG, stat.S_IFDIR) else "file"
        yield info.filename, kind, info.file_size, (lambda info=info: zf.open(info))


def _tar_entries(tf: tarfile.TarFile):
    for m in tf.getmembers():
        kind = "dir" if m.isdir() else "file" if m.isreg() else "link" if (m.issym() or m.islnk()) else "special"
        yield m.name, kind, m.size, (lambda m=m: tf.extractfile(m))


def extract(archive, dest, *, max_member: int = MAX_MEMBER_BYTES, max_total: int = MAX_TOTAL_BYTES) -> Path:
    """Extract a .zip / .tar / .tgz / .tar.gz into `dest`. Every member is checked before anything is written:
    absolute paths, '..' components, links of any kind (no supported dataset ships one), devices and fifos, a member
    over `max_member` bytes and a total over `max_total` are refused in one line. Files are then written by this
    function itself (no extractall, no archive permissions), so safety does not depend on the Python version's
    tarfile filters."""
    archive, dest = Path(archive), Path(dest)
    kind = _archive_kind(archive)

    def refuse(member: str, why: str) -> None:
        raise HashbenchError(f"{archive}: refusing to extract member {member!r} ({why}); the archive is unsafe")

    try:
        with (zipfile.ZipFile(archive) if kind == "zip" else tarfile.open(archive, "r:*")) as handle:
            entries = list(_zip_entries(handle) if kind == "zip" else _tar_entries(handle))
            total = 0
            for name, what, size, _ in entries:
                why = _unsafe_name(name)
                if why:
                    refuse(name, why)
                if what == "link":
                    refuse(name, "a symbolic or hard link; links are not allowed")
                if what == "special":
                    refuse(name, "device, fifo or other special file")
                if size > max_member:
                    refuse(name, f"{size} bytes, over the {max_member}-byte limit per member")
                total += size
                if total > max_total:
                    refuse(name, f"the archive unpacks to over {max_total} bytes")
            dest.mkdir(parents=True, exist_ok=True)
            root = dest.resolve()
            files = [e for e in entries if e[1] == "file"]
            for name, what, _size, _ in entries:
                if what == "dir":
                    _inside(root, name, archive).mkdir(parents=True, exist_ok=True)
            for name, _, size, open_member in tqdm(files, desc=f"extract {archive.name}", unit="file", leave=False,
                                                   disable=len(files) < 1000):
                target = _inside(root, name, archive)
                target.parent.mkdir(parents=True, exist_ok=True)
                with open_member() as source, open(target, "wb") as out:
                    copied = _copy_capped(source, out, size)
                if copied != size:
                    refuse(name, f"{copied} bytes where the archive declares {size}")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as err:
        raise HashbenchError(f"{archive}: not a readable archive ({_one_line(err)}); download it again") from None
    return dest


def _inside(root: Path, name: str, archive: Path) -> Path:
    """root/name, after checking that it stays inside root once resolved (a link already in dest could lead out)."""
    target = (root / name).resolve()
    if target != root and root not in target.parents:
        raise HashbenchError(f"{archive}: refusing to extract member {name!r} (it would land outside {root}); the "
                             f"archive is unsafe")
    return target


def _copy_capped(source, out, size: int, block: int = 1 << 20) -> int:
    """Copy at most size + 1 bytes (so an understated size is detected without reading on)."""
    copied = 0
    while copied <= size:
        data = source.read(min(block, size + 1 - copied))
        if not data:
            break
        out.write(data)
        copied += len(data)
    return copied
