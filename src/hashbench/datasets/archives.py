"""Reading inside archives without extracting them: open with one-line errors, find members by name, copy chosen
regular members to paths the converter builds (never to a path taken from the archive), with size caps."""
from __future__ import annotations

import posixpath
import re
import shutil
import tarfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

from ..errors import HashbenchError
from .base import one_line

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")  # a file name a converter may write


@contextmanager
def reading_zip(path):
    """An open ZipFile; an unreadable archive (or a read error inside the block) is one line naming the file."""
    try:
        with zipfile.ZipFile(path) as zf:
            yield zf
    except (zipfile.BadZipFile, OSError) as err:
        raise HashbenchError(f"{path}: not a readable zip ({one_line(err)})") from None


@contextmanager
def reading_tar(path):
    """An open TarFile (any compression), with the same one-line errors."""
    try:
        with tarfile.open(path, "r:*") as tf:
            yield tf
    except (tarfile.TarError, EOFError, OSError) as err:
        raise HashbenchError(f"{path}: not a readable archive ({one_line(err)})") from None


def tar_files_by_basename(tf: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """Regular members by base name (links and special members are never returned)."""
    return {posixpath.basename(m.name): m for m in tf.getmembers() if m.isfile()}


def zip_files_by_basename(zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    return {posixpath.basename(i.filename): i for i in zf.infolist() if not i.is_dir()}


def read_member(archive, handle, member, max_bytes: int, what: str) -> bytes:
    """The bytes of a zip or tar member, refused in one line when larger than `max_bytes`."""
    size = member.file_size if isinstance(member, zipfile.ZipInfo) else member.size
    if size > max_bytes:
        raise HashbenchError(f"{archive}: {what} has {size} bytes, more than the {max_bytes >> 20} MiB allowed")
    if isinstance(member, zipfile.ZipInfo):
        return handle.read(member)
    return handle.extractfile(member).read()


def copy_member(archive, handle, member, dest: Path, max_bytes: int) -> int:
    """Copy one regular member to `dest` (whose file name must be a plain safe name); return its size."""
    if not SAFE_NAME.match(dest.name):
        raise HashbenchError(f"{archive}: member {getattr(member, 'name', None) or member.filename!r} has an "
                             f"unsafe file name; use the official archive")
    size = member.file_size if isinstance(member, zipfile.ZipInfo) else member.size
    if size > max_bytes:
        raise HashbenchError(f"{archive}: {dest.name} has {size} bytes, more than the {max_bytes >> 20} MiB allowed")
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = handle.open(member) if isinstance(member, zipfile.ZipInfo) else handle.extractfile(member)
    with src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    return size
