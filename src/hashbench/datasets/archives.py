"""Reading inside archives without extracting them: open with one-line errors, find members by name, copy chosen
regular members to paths the converter builds (never to a path taken from the archive), with size caps."""
from __future__ import annotations

import posixpath
import re
import tarfile
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

from .. import download
from ..errors import HashbenchError
from .base import one_line

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")  # a file name a converter may write


class CappedZipFile(zipfile.ZipFile):
    """A ZipFile whose read() refuses a member that declares more than download.MAX_READ_BYTES, before reading it: a
    few KB of crafted zip can declare gigabytes."""

    def read(self, name, pwd=None):
        info = name if isinstance(name, zipfile.ZipInfo) else self.getinfo(name)
        if info.file_size > download.MAX_READ_BYTES:
            raise HashbenchError(f"{self.filename}: member {info.filename!r} declares {info.file_size} bytes, over "
                                 f"the {download.MAX_READ_BYTES}-byte limit; the archive is not the official one")
        return super().read(info, pwd)


@contextmanager
def reading_zip(path):
    """An open (capped) ZipFile; an unreadable archive (or a read error inside the block) is one line naming it."""
    try:
        with CappedZipFile(path) as zf:
            yield zf
    except (zipfile.BadZipFile, OSError, zlib.error) as err:
        raise HashbenchError(f"{path}: not a readable zip ({one_line(err)})") from None


@contextmanager
def reading_tar(path):
    """An open TarFile (any compression), with the same one-line errors."""
    try:
        with tarfile.open(path, "r:*") as tf:
            yield tf
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise HashbenchError(f"{path}: not a readable archive ({one_line(err)})") from None


def tar_files_by_basename(tf: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """Regular members by base name (links and special members are never returned)."""
    return {posixpath.basename(m.name): m for m in tf.getmembers() if m.isfile()}


def zip_files_by_basename(zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    return {posixpath.basename(i.filename): i for i in zf.infolist() if not i.is_dir()}


def _name(member) -> str:
    return member.filename if isinstance(member, zipfile.ZipInfo) else member.name


def read_member(archive, handle, member, max_bytes: int, what: str) -> bytes:
    """The bytes of a zip or tar member, refused in one line when larger than `max_bytes`."""
    size = member.file_size if isinstance(member, zipfile.ZipInfo) else member.size
    if size > max_bytes:
        raise HashbenchError(f"{archive}: {what} declares {size} bytes, over the {max_bytes}-byte limit; the archive "
                             f"is not the official one")
    if isinstance(member, zipfile.ZipInfo):
        return handle.read(member)
    return handle.extractfile(member).read()


def copy_member(archive, handle, member, dest: Path, max_bytes: int) -> int:
    """Copy one regular member to `dest` (whose file name must be a plain safe name); return its size."""
    if not SAFE_NAME.match(dest.name):
        raise HashbenchError(f"{archive}: member {_name(member)!r} would be written as {dest.name!r}, not a plain file "
                             f"name; use the official archive")
    size = member.file_size if isinstance(member, zipfile.ZipInfo) else member.size
    if size > max_bytes:
        raise HashbenchError(f"{archive}: {_name(member)} declares {size} bytes, over the {max_bytes}-byte limit; the "
                             f"archive is not the official one")
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = handle.open(member) if isinstance(member, zipfile.ZipInfo) else handle.extractfile(member)
    with src, open(dest, "wb") as out:
        copied = download._copy_capped(src, out, size)
    if copied != size:
        raise HashbenchError(f"{archive}: {dest.name} holds {copied} bytes where the archive declares {size}")
    return size
