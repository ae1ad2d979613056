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


def labelled_digits(n=48, classes=4, seed=0):
    """A tiny labelled image set for the deep methods' contract tests: (images (n, 28, 28, 1) uint8, one-hot labels),
    each class a bright square at its own place on noise, so a few epochs separate them."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, (n, 28, 28, 1), dtype=np.uint8)
    y = np.arange(n) % classes
    for i, c in enumerate(y):
        r, k = divmod(int(c), 2)
        images[i, 4 + 12 * r:12 + 12 * r, 4 + 12 * k:12 + 12 * k] = 230
    return images, np.eye(classes, dtype=np.uint8)[y]


def check_deep_method(name, params, bits=16, seed=0):
    """Fit `name` twice on `labelled_digits` with `params`: same history and codes (seeded), the training loss
    falls, codes of the documented shape and dtype, and a fresh model loaded from `state_dict` encodes the same.
    Returns the fitted method."""
    from hashbench.methods import DatasetInfo, TrainSet, get_method

    info = DatasetInfo("mnist5k", (28, 28, 1), 4, frozenset({"image"}))
    images, labels = labelled_digits()
    runs = []
    for _ in range(2):
        method = get_method(name)(bits, seed, params, info)
        method.runtime.progress = False
        history = method.fit(TrainSet(images, labels=labels))
        runs.append((history, method.encode(images, role="query"), method.encode(images)))
    assert runs[0][0] == runs[1][0]
    assert all(np.array_equal(a, b) for a, b in zip(runs[0][1:], runs[1][1:]))
    history, query, database = runs[0]
    assert history[-1]["loss"] < history[0]["loss"]
    if method.quantized:
        books = method.codebooks()
        assert query.dtype == np.float32 and query.shape[0] == len(images)
        assert database.dtype == np.uint8 and database.shape == (len(images), books.shape[0])
        assert books.shape[2] == query.shape[1] and books.shape[0] * (books.shape[1].bit_length() - 1) == bits
    else:
        assert query.dtype == np.int8 and query.shape == (len(images), bits) and set(np.unique(query)) <= {-1, 1}
        assert np.array_equal(query, database)
    fresh = get_method(name)(bits, seed + 1, params, info)
    fresh.load_state_dict({k: v.clone() for k, v in method.state_dict().items()})
    assert np.array_equal(fresh.encode(images), database)
    assert np.array_equal(fresh.encode(images, role="query"), query)
    return method
