"""Builders of miniature archives and files for the dataset tests (imported by the test modules)."""
import dataclasses
import hashlib
import io
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def make_zip(path, entries):
    """entries: (name, bytes or str)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def make_tar(path, members):
    """members: (TarInfo, bytes or None), e.g. from tar_file / tar_link."""
    with tarfile.open(path, "w:gz" if path.name.endswith("gz") else "w") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def tar_file(name, data=b"hello"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def tar_link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def tar_dir(name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info, None


def zip_link(name, target):
    """A zip member recorded as a symbolic link (its data, the target, is given with it to make_zip)."""
    import stat

    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def jpeg(rng, h=9, w=12) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def serve_as(monkeypatch, spec, base, www, names):
    """Point `spec`'s sources named `names` at files in `www` served at `base` (their md5 as the checksum)."""
    replaced = tuple(dataclasses.replace(s, url=f"{base}/{s.name}", md5=md5((www / s.name).read_bytes()), bytes=None)
                     if s.name in names else s for s in spec.sources)
    monkeypatch.setattr(type(spec), "sources", replaced)


def shared_data_dir() -> Path:
    """The shared real-annotation folder: $HASHBENCH_SHARED, else ../shared/data from the working directory (tests
    run from the repository root), else next to the repository."""
    if os.environ.get("HASHBENCH_SHARED"):
        return Path(os.environ["HASHBENCH_SHARED"])
    from_cwd = Path.cwd().parent / "shared" / "data"
    return from_cwd if from_cwd.is_dir() else Path(__file__).resolve().parents[2] / "shared" / "data"
