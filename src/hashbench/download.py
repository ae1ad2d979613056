"""Real datasets: download with checksum, safe archive extraction, and converters to the hashbench format.

Nothing here runs on the build machines (no network); it is the code path for users who have the data.

Manually placed archives: put the file, under its official name, in ``data/manual/<dataset>/<archive name>``
(e.g. ``data/manual/cifar10/cifar-10-binary.tar.gz``). :func:`fetch` uses it without any network access when its
md5 matches (or when no md5 is published), and refuses it with a one-line error when it does not.

CIFAR-10 comes from its *binary* release (``cifar-10-binary.tar.gz``: fixed 3,073-byte records, one label byte
then 3,072 pixel bytes as R, G, B planes of 32x32). The better-known python release stores pickles, and unpickling
downloaded data can execute arbitrary code; this project never unpickles anything, so that release is not used.
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
import warnings
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .config import Param
from .data import file_md5, write_dataset
from .errors import HashbenchError

MANUAL_ROOT = Path("data/manual")
DOWNLOAD_ROOT = Path("data/download")
USER_AGENT = "hashbench/0.1 (+https://github.com/)"

# ---------------------------------------------------------------------------------------------------- sources
# name -> page, licence and the archives (url, md5 or None where none is published, bytes where verified).
SOURCES: dict[str, dict] = {
    "cifar10": {
        "page": "https://www.cs.toronto.edu/~kriz/cifar.html",
        "license": "CIFAR-10 (Krizhevsky 2009), no explicit licence; research use",
        "files": [
            {"name": "cifar-10-binary.tar.gz", "url": "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
             "md5": "c32a1d4ab5d03f1284b67883e8d87530", "bytes": None},
        ],
        # For reference only: the python release (pickles) is deliberately not supported, see the module doc.
        "unsupported": [
            {"name": "cifar-10-python.tar.gz", "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
             "md5": "c58f30108f718f92721af3b95e74349a", "bytes": 170498071},
        ],
    },
    "mirflickr25k": {
        "page": "https://press.liacs.nl/mirflickr/mirdownload.html",
        "license": "MIRFLICKR-25K: Flickr images under Creative Commons licences (per-image, see meta/license)",
        "files": [
            {"name": "mirflickr25k.zip", "url": "http://press.liacs.nl/mirflickr/mirflickr25k.v3b/mirflickr25k.zip",
             "md5": "a23d0a8564ee84cda5622a6c2f947785", "bytes": None},
            {"name": "mirflickr25k_annotations_v080.zip",
             "url": "http://press.liacs.nl/mirflickr/mirflickr25k.v3b/mirflickr25k_annotations_v080.zip",
             "md5": "aa0138c79892b1b670184d142380948f", "bytes": None},  # md5 unverified (third-party)
        ],
    },
    "nuswide": {
        "page": "https://lms.comp.nus.edu.sg/wp-content/uploads/2019/research/nuswide/NUS-WIDE.html",
        "license": "NUS-WIDE: research use; images only through the owners' agreement",
        "files": [
            {"name": "Groundtruth.zip",
             "url": "https://lms.comp.nus.edu.sg/wp-content/uploads/2019/research/nuswide/Groundtruth.zip",
             "md5": "a95fb76f7c8300e92ece0a90dd0ced4d", "bytes": 1129480},
            {"name": "ConceptsList.zip",
             "url": "https://lms.comp.nus.edu.sg/wp-content/uploads/2019/research/nuswide/ConceptsList.zip",
             "md5": "5b877de6bfb0f7ba558f90d77b860348", "bytes": 448},
            {"name": "ImageList.zip", "optional": True,
             "url": "https://lms.comp.nus.edu.sg/wp-content/uploads/2019/research/nuswide/ImageList.zip",
             "md5": None, "bytes": None},
            {"name": "NUS_WID_Tags.zip", "optional": True,
             "url": "https://lms.comp.nus.edu.sg/wp-content/uploads/2019/research/nuswide/NUS_WID_Tags.zip",
             "md5": None, "bytes": None},
        ],
    },
    "cub200": {
        "page": "https://www.vision.caltech.edu/datasets/cub_200_2011/",
        "license": "CUB-200-2011: research use (images from Flickr)",
        "files": [
            {"name": "CUB_200_2011.tgz", "url": "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz",
             "md5": "97eceeb196236b17998738112f37df78", "bytes": 1150585339},
        ],
    },
    "stanford-dogs": {
        "page": "http://vision.stanford.edu/aditya86/ImageNetDogs/",
        "license": "Stanford Dogs: ImageNet terms (non-commercial research)",
        "files": [
            {"name": "images.tar", "url": "http://vision.stanford.edu/aditya86/ImageNetDogs/images.tar",
             "md5": "1bb1f2a596ae7057f99d7d75860002ef", "bytes": 793579520},
            {"name": "annotation.tar", "optional": True,  # bounding boxes: unused by the triplet reference
             "url": "http://vision.stanford.edu/aditya86/ImageNetDogs/annotation.tar",
             "md5": "4298cc0031f6bc6e74612ac83b5988e2", "bytes": 21852160},
            {"name": "lists.tar", "url": "http://vision.stanford.edu/aditya86/ImageNetDogs/lists.tar",
             "md5": "edbb9f16854ec66506b5f09b583e0656", "bytes": 481280},
        ],
    },
    "voc2007": {
        "page": "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/",
        "license": "PASCAL VOC 2007: Flickr images, see the VOC terms",
        "files": [
            {"name": "VOCtrainval_06-Nov-2007.tar",
             "url": "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/VOCtrainval_06-Nov-2007.tar",
             "md5": "c52e279531787c972589f7e41ab4ae64", "bytes": 460032000},
            {"name": "VOCtest_06-Nov-2007.tar",
             "url": "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/VOCtest_06-Nov-2007.tar",
             "md5": "b6e924de25625d8de591ea690078ad9f", "bytes": 451020800},
        ],
    },
    "voc2012": {
        "page": "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/",
        "license": "PASCAL VOC 2012: Flickr images, see the VOC terms",
        "files": [
            {"name": "VOCtrainval_11-May-2012.tar",
             "url": "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
             "md5": "6cd6e144f989b92b3379bac3b3de84fd", "bytes": 1999639040},
        ],
    },
    "wikipedia": {
        "page": "http://www.svcl.ucsd.edu/projects/crossmodal/",
        "license": "Wikipedia image-text (Rasiwasia et al. 2010): research use",
        "files": [
            {"name": "wikipedia_dataset.zip", "url": "http://www.svcl.ucsd.edu/projects/crossmodal/wikipedia_dataset.zip",
             "md5": None, "bytes": None},
        ],
    },
}

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR_RECORD = 3073

# params blocks of the real sets that have a converter (the embedded ones live in hashbench.embedded)
_IMAGE_SET = {"seed": Param(0, int, ge=0), "image_size": Param(256, int, ge=32)}  # image files read at image_size^2
REAL_SCHEMAS: dict[str, dict[str, Param]] = {
    "cifar10": {"seed": Param(0, int, ge=0)},
    **{name: _IMAGE_SET for name in ("mirflickr25k", "cub200", "stanford-dogs", "voc2007", "voc2012")},
    "nuswide": {**_IMAGE_SET, "subset": Param("top21", str, choices=("top21", "tc10", "all81")),
                "image_root": Param(None, str, nullable=True)},
}
_OFFICIAL = {"protocol": "partition", "n_train": None, "train_in_database": True}
REAL_SPLIT_DEFAULTS = {
    # official splits: query = the test (VOC2012: val) side, train = database = the rest (triplet reference, HyP²)
    "cub200": _OFFICIAL, "stanford-dogs": _OFFICIAL, "voc2007": _OFFICIAL, "voc2012": _OFFICIAL,
    # DeepHash-pytorch `mirflickr`: 1,000 queries, 4,000 train, database = the other 20,000 (incl. 419 unlabelled)
    "mirflickr25k": {"protocol": "random", "n_query": 1000, "n_train": 4000, "train_in_database": False},
    # DeepHash-pytorch `cifar10`: 100/class queries, 500/class train, database = the other 54,000 (train excluded)
    "cifar10": {"protocol": "per_class", "query_per_class": 100, "train_per_class": 500,
                "train_in_database": False},
    # DeepHash-pytorch `nuswide_21`: greedy 100 / 500 per concept, database = all - query (train inside)
    "nuswide": {"protocol": "quota", "query_per_class": 100, "train_per_class": 500, "train_in_database": True},
}


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


# ---------------------------------------------------------------------------------------------------- CIFAR-10
def _tar_members_by_basename(tf: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    out = {}
    for m in tf.getmembers():
        if m.isfile() and not _unsafe_name(m.name):
            out[posixpath.basename(m.name)] = m
    return out


def read_cifar10_binary(archive) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(images uint8 (N, 32, 32, 3), labels int64 (N,), partition uint8 (N,) 1 = test, class names) read straight
    from ``cifar-10-binary.tar.gz`` (nothing is extracted; no pickle involved)."""
    archive = Path(archive)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    try:
        with tarfile.open(archive, "r:*") as tf:
            members = _tar_members_by_basename(tf)
            missing = [n for n in names if n not in members]
            if missing:
                raise HashbenchError(f"{archive}: {missing[0]} not found; use the official cifar-10-binary.tar.gz")
            images, labels, part = [], [], []
            for fname in tqdm(names, desc="cifar-10 batches", leave=False):
                raw = tf.extractfile(members[fname]).read()
                if len(raw) == 0 or len(raw) % CIFAR_RECORD:
                    raise HashbenchError(f"{archive}: {fname} has {len(raw)} bytes, not a multiple of the "
                                         f"{CIFAR_RECORD}-byte record; the archive is corrupt")
                rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, CIFAR_RECORD)
                lab = rec[:, 0].astype(np.int64)
                if lab.max() > 9:
                    raise HashbenchError(f"{archive}: {fname} has label {int(lab.max())}; labels must be 0..9")
                images.append(rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
                labels.append(lab)
                part.append(np.full(len(lab), 1 if fname == "test_batch.bin" else 0, dtype=np.uint8))
            classes = CIFAR10_CLASSES
            if "batches.meta.txt" in members:
                text = tf.extractfile(members["batches.meta.txt"]).read().decode("utf-8", "replace")
                found = [line.strip() for line in text.splitlines() if line.strip()]
                if len(found) == 10:
                    classes = found
    except (tarfile.TarError, EOFError, OSError) as err:
        raise HashbenchError(f"{archive}: not a readable tar.gz ({_one_line(err)}); download it again") from None
    return np.concatenate(images), np.concatenate(labels), np.concatenate(part), classes


def convert_cifar10_binary(archive, folder) -> dict:
    """Write CIFAR-10 (train + test, 60,000 images; test = partition 1) from the binary archive into `folder`."""
    images, labels, partition, classes = read_cifar10_binary(archive)
    return write_dataset(
        folder, name="cifar10", labels=np.eye(10, dtype=np.uint8)[labels], class_names=classes,
        images=np.ascontiguousarray(images), partition=partition, single_label=True,
        extra_manifest={"source": f"CIFAR-10 binary release ({SOURCES['cifar10']['page']}); "
                                  f"{SOURCES['cifar10']['license']}; partition 1 = official test batch",
                        "generator": {"archive": Path(archive).name, "md5": file_md5(archive)}},
    )


# ----------------------------------------------------------------------------------------------------- NUS-WIDE
def _parse_label_file(raw: bytes, where: str) -> np.ndarray:
    """0/1 per line; other values are reported (one warning line counting them) and treated as 0."""
    arr = np.frombuffer(raw, dtype=np.uint8)
    if arr.size % 2 == 0 and arr.size and np.all(arr[1::2] == 10) and np.all((arr[0::2] == 48) | (arr[0::2] == 49)):
        return (arr[0::2] - 48).astype(np.uint8)  # fast path: "0\n" / "1\n" only
    tokens = raw.split()
    values = np.empty(len(tokens), dtype=np.int64)
    bad: list[tuple[int, bytes]] = []
    for i, tok in enumerate(tokens):
        try:
            values[i] = int(tok)
        except ValueError:
            values[i] = -1
        if values[i] not in (0, 1):
            bad.append((i + 1, tok))
            values[i] = 0
    if bad:
        first = ", ".join(f"{t.decode('ascii', 'replace')} at line {ln}" for ln, t in bad[:3])
        warnings.warn(f"{where}: {len(bad)} bad label value(s) treated as 0 ({first})", stacklevel=3)
    return values.astype(np.uint8)


class _CappedZipFile(zipfile.ZipFile):
    """A ZipFile whose read() refuses a member that declares more than MAX_READ_BYTES, before reading it: a few KB of
    crafted zip can declare gigabytes."""

    def read(self, name, pwd=None):
        info = name if isinstance(name, zipfile.ZipInfo) else self.getinfo(name)
        if info.file_size > MAX_READ_BYTES:
            raise HashbenchError(f"{self.filename}: member {info.filename!r} declares {info.file_size} bytes, over "
                                 f"the {MAX_READ_BYTES}-byte limit; the archive is not the official one")
        return super().read(info, pwd)


@contextmanager
def _reading_zip(path):
    """An open ZipFile; an unreadable archive (or a read error inside the block) is one line naming the file."""
    try:
        with _CappedZipFile(path) as zf:
            yield zf
    except (zipfile.BadZipFile, OSError, zlib.error) as err:
        raise HashbenchError(f"{path}: not a readable zip ({_one_line(err)})") from None


def read_nuswide_concepts(concepts_zip) -> list[str]:
    """The 81 concept names from ConceptsList.zip (Concepts81.txt, alphabetical)."""
    with _reading_zip(concepts_zip) as zf:
        name = next((n for n in zf.namelist() if n.endswith("Concepts81.txt")), None)
        if name is None:
            raise HashbenchError(f"{concepts_zip}: Concepts81.txt not found; use the official ConceptsList.zip")
        text = zf.read(name).decode("utf-8", "replace")
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_nuswide_groundtruth(groundtruth_zip, concepts: list[str], part: str = "all") -> np.ndarray:
    """uint8 (n, len(concepts)) 0/1 labels from Groundtruth.zip: part "all" (AllLabels, 269,648 rows in
    Imagelist.txt order), "train" or "test" (TrainTestLabels). Bad values (e.g. -1130179 at line 78,373 of
    Labels_lake_Train.txt) are reported with a warning and treated as 0."""
    suffix = {"all": "", "train": "_Train", "test": "_Test"}
    if part not in suffix:
        raise HashbenchError(f"part: {part!r} is not allowed; use all, train or test")
    folder = "AllLabels" if part == "all" else "TrainTestLabels"
    zpath = Path(groundtruth_zip)
    with _reading_zip(zpath) as zf:
        index = {n.split("/", 1)[-1] if n.count("/") > 1 else n: n for n in zf.namelist()}
        columns = []
        for concept in tqdm(concepts, desc=f"NUS-WIDE {folder}", leave=False):
            key = f"{folder}/Labels_{concept}{suffix[part]}.txt"
            if key not in index:
                raise HashbenchError(f"{zpath}: {key} not found; use the official Groundtruth.zip")
            columns.append(_parse_label_file(zf.read(index[key]), f"{zpath.name}:{key}"))
    lengths = {c.size for c in columns}
    if len(lengths) != 1:
        raise HashbenchError(f"{zpath}: {folder} files have different lengths {sorted(lengths)}; the zip is corrupt")
    return np.stack(columns, axis=1)


NUSWIDE_SUBSETS = {"all81": 81, "top21": 21, "tc10": 10}


def read_nuswide_tags(tags_zip, n_rows: int) -> tuple[list[list[str]], list[str], np.ndarray]:
    """From NUS_WID_Tags.zip: the user tags per image (All_Tags.txt: image id, then its tags), the 1,000-tag vocab
    (TagList1k.txt) and its uint8 (n_rows, 1,000) 0/1 matrix (AllTags1k.txt, the bag of words DCMH and DJSRH use),
    all in Imagelist.txt order."""
    zpath = Path(tags_zip)
    with _reading_zip(zpath) as zf:
        found = {posixpath.basename(m): m for m in zf.namelist()}
        missing = [f for f in ("All_Tags.txt", "TagList1k.txt", "AllTags1k.txt") if f not in found]
        if missing:
            raise HashbenchError(f"{zpath}: {', '.join(missing)} not found; use the official NUS_WID_Tags.zip")
        lines = zf.read(found["All_Tags.txt"]).decode("utf-8", "replace").splitlines()
        vocab = zf.read(found["TagList1k.txt"]).decode("utf-8", "replace").split()
        raw = np.frombuffer(zf.read(found["AllTags1k.txt"]), np.uint8)
    lines = [ln for ln in lines if ln.strip()]
    if len(lines) != n_rows:
        raise HashbenchError(f"{zpath}: All_Tags.txt has {len(lines)} lines for {n_rows} label rows")
    tags = [list(dict.fromkeys(ln.split()[1:])) for ln in lines]
    digits = raw[(raw == 48) | (raw == 49)] - 48          # the 0/1 values, whatever separates them
    if digits.size != n_rows * len(vocab):
        raise HashbenchError(f"{zpath}: AllTags1k.txt has {digits.size} 0/1 values; expected {n_rows} rows x "
                             f"{len(vocab)} tags of TagList1k.txt")
    return tags, vocab, digits.reshape(n_rows, len(vocab))


def convert_nuswide(groundtruth_zip, concepts_zip, folder, subset: str = "top21", image_list_zip=None,
                    image_root: str | None = None, image_size: int = 256, tags_zip=None,
                    check_train_test: bool = True) -> dict:
    """NUS-WIDE labels in the hashbench format: the `subset`'s concepts (most frequent first, as DeepHash-pytorch's
    nuswide_21 columns), items with at least one of them (top21: 195,834; tc10: 186,577; all81: 209,347).
    Image paths come from ImageList.zip when given (images themselves need the owners' agreement); user tags and
    the 1,000-tag bag of words as text from NUS_WID_Tags.zip when given."""
    if subset not in NUSWIDE_SUBSETS:
        raise HashbenchError(f"nuswide.subset: {subset!r} is not allowed; use one of {', '.join(NUSWIDE_SUBSETS)}")
    concepts = read_nuswide_concepts(concepts_zip)
    allm = read_nuswide_groundtruth(groundtruth_zip, concepts, "all")
    counts = allm.sum(axis=0)
    order = np.argsort(-counts, kind="stable")[: NUSWIDE_SUBSETS[subset]]
    notes = []
    if check_train_test:  # the official train/test files must add up to AllLabels (reports bad values)
        tt = read_nuswide_groundtruth(groundtruth_zip, concepts, "train").sum(axis=0) + \
            read_nuswide_groundtruth(groundtruth_zip, concepts, "test").sum(axis=0)
        diff = [concepts[j] for j in np.flatnonzero(tt != counts)]
        if diff:
            warnings.warn(f"{Path(groundtruth_zip).name}: train+test counts differ from AllLabels for "
                          f"{len(diff)} concept(s): {', '.join(diff[:5])}", stacklevel=2)
        notes.append(f"train+test vs AllLabels count mismatches: {diff}")
    labels = allm[:, order]
    keep = np.flatnonzero(labels.any(axis=1))
    paths = None
    if image_list_zip is not None:
        with _reading_zip(image_list_zip) as zf:
            name = next((n for n in zf.namelist() if n.endswith("Imagelist.txt")), None)
            if name is None:
                raise HashbenchError(f"{image_list_zip}: Imagelist.txt not found; use the official "
                                     f"ImageList.zip")
            text = zf.read(name).decode("utf-8", "replace")
        lines = [ln.strip().replace("\\", "/") for ln in text.splitlines() if ln.strip()]
        if len(lines) != allm.shape[0]:
            raise HashbenchError(f"{image_list_zip}: {len(lines)} paths for {allm.shape[0]} label rows")
        paths = [lines[i] for i in keep]
    tags = text = vocab = None
    if tags_zip is not None:
        all_tags, vocab, bag = read_nuswide_tags(tags_zip, allm.shape[0])
        tags, text = [all_tags[i] for i in keep], bag[keep].astype(np.float32)
    return write_dataset(
        folder, name="nuswide", labels=labels[keep], class_names=[concepts[j] for j in order],
        image_paths=paths, image_root=(image_root or "images") if paths is not None else None, image_size=image_size,
        tags=tags, text=text, text_vocab=vocab,
        extra_arrays={"source_index": keep.astype(np.int64)},
        extra_manifest={"source": f"NUS-WIDE ({SOURCES['nuswide']['page']}); {SOURCES['nuswide']['license']}",
                        "generator": {"subset": subset, "notes": notes}},
    )


# ------------------------------------------------------------------------------------------------ MIRFLICKR-25K
_MIR_IMAGE = re.compile(r"(?:^|/)im(\d+)\.jpg$")
_MIR_TAGS = re.compile(r"(?:^|/)meta/tags/tags(\d+)\.txt$")
_MIR_COMMON = re.compile(r"(?:^|/)doc/common_tags\.txt$")


def read_mirflickr_annotations(annotations_zip, n_images: int) -> tuple[list[str], np.ndarray]:
    """The concept names and uint8 (n_images, C) labels of mirflickr25k_annotations_v080.zip: one column per
    ``<concept>.txt`` (1-based image ids), in sorted file-name order (24 concepts and 14 ``_r1`` subsets, each
    right after its concept: DeepHash-pytorch's 38 columns)."""
    zpath = Path(annotations_zip)
    with _reading_zip(zpath) as zf:
        members = sorted((posixpath.basename(m), m) for m in zf.namelist()
                         if m.lower().endswith(".txt") and not posixpath.basename(m).lower().startswith("readme"))
        if not members:
            raise HashbenchError(f"{zpath}: no <concept>.txt files; use the official "
                                 f"mirflickr25k_annotations_v080.zip")
        labels = np.zeros((n_images, len(members)), np.uint8)
        for j, (_name, member) in enumerate(members):
            for line_no, line in enumerate(zf.read(member).decode("utf-8", "replace").splitlines(), 1):
                token = line.strip()
                if not token:
                    continue
                if not token.isdigit() or not 1 <= int(token) <= n_images:
                    raise HashbenchError(f"{zpath.name}:{member} line {line_no}: {token!r} is not an image id; "
                                         f"ids are 1..{n_images}")
                labels[int(token) - 1, j] = 1
    return [fname[:-4] for fname, _ in members], labels


def convert_mirflickr25k(images_zip, annotations_zip, folder, image_size: int = 256) -> dict:
    """MIRFLICKR-25K in the hashbench format: all 25,000 images (copied to ``<folder>/images/``; 419 have no label and
    are never relevant), 38 labels, the cleaned user tags of ``meta/tags/tags<N>.txt``, and as text the bag of
    words over the 1,386 tags of ``doc/common_tags.txt`` (as DCMH's YAll, which DJSRH uses)."""
    import shutil

    zpath, folder = Path(images_zip), Path(folder)
    with _reading_zip(zpath) as zf:
        images, tag_files, common = {}, {}, None
        for m in zf.namelist():
            if (hit := _MIR_IMAGE.search(m)) is not None:
                images[int(hit.group(1))] = m
            elif (hit := _MIR_TAGS.search(m)) is not None:
                tag_files[int(hit.group(1))] = m
            elif _MIR_COMMON.search(m):
                common = m
        n = len(images)
        if n == 0 or sorted(images) != list(range(1, n + 1)):
            missing = next((i for i in range(1, n + 1) if i not in images), None)
            raise HashbenchError(f"{zpath}: the images are not im1.jpg..im{n}.jpg (first missing: "
                                 f"im{missing}.jpg); use the official mirflickr25k.zip")
        tags = []
        for i in range(1, n + 1):
            words = zf.read(tag_files[i]).decode("utf-8", "replace").split() if i in tag_files else []
            tags.append(list(dict.fromkeys(words)))
        vocab = None
        if common is not None:
            vocab = [line.split()[0] for line in zf.read(common).decode("utf-8", "replace").splitlines()
                     if line.strip()]
        names, labels = read_mirflickr_annotations(annotations_zip, n)  # checked before anything is written
        (folder / "images").mkdir(parents=True, exist_ok=True)
        for i in tqdm(range(1, n + 1), desc="MIRFLICKR-25K images", unit="img", mininterval=1.0):
            with zf.open(images[i]) as src, open(folder / "images" / f"im{i}.jpg", "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    text = None
    if vocab is not None:
        column = {w: j for j, w in enumerate(vocab)}
        text = np.zeros((n, len(vocab)), np.float32)
        for i, words in enumerate(tags):
            text[i, [column[w] for w in words if w in column]] = 1.0
    unlabelled = int((~labels.any(axis=1)).sum())
    return write_dataset(
        folder, name="mirflickr25k", labels=labels, class_names=names, image_paths=[f"im{i}.jpg" for i in
                                                                                   range(1, n + 1)],
        image_root="images", image_size=image_size, tags=tags, text=text, text_vocab=vocab,
        extra_manifest={"source": f"MIRFLICKR-25K ({SOURCES['mirflickr25k']['page']}); "
                                  f"{SOURCES['mirflickr25k']['license']}",
                        "generator": {"n_unlabelled": unlabelled, "n_labels": len(names),
                                      "text": "bag of words over doc/common_tags.txt" if vocab else None}},
    )


# ------------------------------------------------------------------------------------------ CUB-200-2011, VOC
def _id_table(path: Path, what: str) -> dict[int, str]:
    """`<int id> <value>` per line (CUB's metadata files) -> {id: value}; one-line error on a malformed line."""
    if not path.is_file():
        raise HashbenchError(f"{path}: not found; the CUB_200_2011.tgz archive is incomplete")
    out = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        head, _, value = line.strip().partition(" ")
        if not head.isdigit() or not value:
            raise HashbenchError(f"{path.name} line {line_no}: {line.strip()!r} is not '<id> <{what}>'")
        out[int(head)] = value.strip()
    return out


def convert_cub200(archive, folder, image_size: int = 256) -> dict:
    """CUB-200-2011: 11,788 images of 200 bird species (single-label), extracted under ``<folder>/images``. The
    official split gives the partition: the 5,794 test images are the query side (1), the 5,994 train images the
    database/train side (0), as the triplet-hashing reference uses them."""
    folder = Path(folder)
    extract(archive, folder / "images")
    meta = next((p.parent for p in sorted((folder / "images").rglob("images.txt"))), None)
    if meta is None:
        raise HashbenchError(f"{archive}: images.txt not found; use the official CUB_200_2011.tgz")
    paths = _id_table(meta / "images.txt", "path")
    classes = _id_table(meta / "classes.txt", "name")
    label_of = _id_table(meta / "image_class_labels.txt", "class id")
    is_train = _id_table(meta / "train_test_split.txt", "0 or 1")
    ids = sorted(paths)
    if set(label_of) != set(ids) or set(is_train) != set(ids):
        raise HashbenchError(f"{archive}: images.txt, image_class_labels.txt and train_test_split.txt list different "
                             f"image ids; the archive is corrupt")
    class_ids = sorted(classes)
    column = {c: j for j, c in enumerate(class_ids)}
    bad = next((i for i in ids if not label_of[i].isdigit() or int(label_of[i]) not in column), None)
    if bad is not None:
        raise HashbenchError(f"image_class_labels.txt: image {bad} has class {label_of[bad]!r}; classes.txt has ids "
                             f"{class_ids[0]}..{class_ids[-1]}")
    labels = np.zeros((len(ids), len(class_ids)), np.uint8)
    labels[np.arange(len(ids)), [column[int(label_of[i])] for i in ids]] = 1
    return write_dataset(
        folder, name="cub200", labels=labels, class_names=[classes[c] for c in class_ids], single_label=True,
        image_paths=[paths[i] for i in ids], image_root=str((meta / "images").relative_to(folder)),
        image_size=image_size, partition=np.array([0 if is_train[i] == "1" else 1 for i in ids], np.uint8),
        extra_arrays={"source_ids": np.array(ids, np.int64)},
        extra_manifest={"source": f"CUB-200-2011 ({SOURCES['cub200']['page']}); {SOURCES['cub200']['license']}; "
                                  f"partition 1 = official test images"},
    )


def _dogs_list(lists_tar: Path, member: str) -> tuple[list[str], np.ndarray]:
    """(file names, 1-based labels) of train_list.mat / test_list.mat inside lists.tar (MATLAB v5 read with
    scipy.io.loadmat, which executes nothing)."""
    import io

    import scipy.io

    try:
        with tarfile.open(lists_tar, "r:*") as tf:
            found = _tar_members_by_basename(tf)
            if member not in found:
                raise HashbenchError(f"{lists_tar}: {member} not found; use the official lists.tar")
            raw = tf.extractfile(found[member]).read()
    except (tarfile.TarError, EOFError, OSError) as err:
        raise HashbenchError(f"{lists_tar}: not a readable archive ({_one_line(err)})") from None
    try:
        mat = scipy.io.loadmat(io.BytesIO(raw))
    except Exception as err:  # noqa: BLE001 - a corrupt .mat raises many kinds (MatReadError, IndexError, ...)
        raise HashbenchError(f"{lists_tar}: {member} is not readable ({type(err).__name__})") from None
    if "file_list" not in mat or "labels" not in mat:
        raise HashbenchError(f"{lists_tar}: {member} lacks file_list / labels; use the official lists.tar")
    files = [str(np.squeeze(x)) for x in mat["file_list"].ravel()]
    labels = np.asarray(mat["labels"]).ravel().astype(np.int64)
    if len(files) != len(labels):
        raise HashbenchError(f"{lists_tar}: {member} has {len(files)} files and {len(labels)} labels")
    return files, labels


def convert_stanford_dogs(images_tar, lists_tar, folder, image_size: int = 256) -> dict:
    """Stanford Dogs: 20,580 images of 120 breeds (single-label), extracted under ``<folder>/images``. The official
    lists give the partition: the 8,580 test images are the query side (1), the 12,000 train images the
    database/train side (0). Class c is the breed folder of label c + 1."""
    folder = Path(folder)
    train_files, train_labels = _dogs_list(Path(lists_tar), "train_list.mat")
    test_files, test_labels = _dogs_list(Path(lists_tar), "test_list.mat")
    files, labels1 = train_files + test_files, np.concatenate([train_labels, test_labels])
    n_classes = int(labels1.max()) if labels1.size else 0
    if labels1.size == 0 or labels1.min() < 1:
        raise HashbenchError(f"{lists_tar}: labels must be 1..{n_classes}; use the official lists.tar")
    names = {}
    for f, lab in zip(files, labels1):
        names.setdefault(int(lab), f.split("/")[0])
    if len(names) != n_classes:
        raise HashbenchError(f"{lists_tar}: labels 1..{n_classes} but only {len(names)} of them have images")
    extract(images_tar, folder / "images")
    image_dir = next((p for p in sorted((folder / "images").rglob("Images")) if p.is_dir()), None)
    if image_dir is None:
        raise HashbenchError(f"{images_tar}: Images/ not found; use the official images.tar")
    return write_dataset(
        folder, name="stanford-dogs", labels=np.eye(n_classes, dtype=np.uint8)[labels1 - 1],
        class_names=[names[c] for c in range(1, n_classes + 1)], single_label=True, image_paths=files,
        image_root=str(image_dir.relative_to(folder)), image_size=image_size,
        partition=np.array([0] * len(train_files) + [1] * len(test_files), np.uint8),
        extra_manifest={"source": f"Stanford Dogs ({SOURCES['stanford-dogs']['page']}); "
                                  f"{SOURCES['stanford-dogs']['license']}; partition 1 = official test list"},
    )


VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]
VOC_SIDES = {"voc2007": ("trainval", "test"), "voc2012": ("train", "val")}  # (database/train side, query side)


def convert_voc(archives: list, folder, name: str, image_size: int = 256) -> dict:
    """PASCAL VOC 2007 / 2012 classification as multi-label retrieval, as HyP² uses it: 20-d multi-hot labels over
    every ``<object><name>`` of an image's annotation, difficult objects included. VOC2007: test (4,952) = query
    side, trainval (5,011) = database/train side; VOC2012: val (5,823) = query side, train (5,717) = database side."""
    import xml.etree.ElementTree as ET

    folder = Path(folder)
    for archive in archives:
        extract(archive, folder / "images")
    year = name[-4:]
    root = next((p for p in sorted((folder / "images").rglob(f"VOC{year}")) if p.is_dir()), None)
    if root is None:
        raise HashbenchError(f"{archives[0]}: VOCdevkit/VOC{year} not found; use the official VOC {year} tar files")
    ids, partition = [], []
    for side, value in zip(VOC_SIDES[name], (0, 1)):
        listing = root / "ImageSets" / "Main" / f"{side}.txt"
        if not listing.is_file():
            raise HashbenchError(f"{listing}: not found; the VOC {year} archives are incomplete")
        names = [ln.strip() for ln in listing.read_text().splitlines() if ln.strip()]
        ids += names
        partition += [value] * len(names)
    column = {c: j for j, c in enumerate(VOC_CLASSES)}
    labels = np.zeros((len(ids), len(VOC_CLASSES)), np.uint8)
    for i, image_id in enumerate(tqdm(ids, desc=f"VOC{year} annotations", unit="file", mininterval=1.0)):
        xml_path = root / "Annotations" / f"{image_id}.xml"
        try:
            objects = [o.findtext("name", "").strip() for o in ET.parse(xml_path).getroot().iter("object")]
        except (OSError, ET.ParseError) as err:
            raise HashbenchError(f"{xml_path}: unreadable annotation ({_one_line(err)})") from None
        unknown = [o for o in objects if o not in column]
        if unknown:
            raise HashbenchError(f"{xml_path}: object {unknown[0]!r} is not a VOC class; use one of "
                                 f"{', '.join(VOC_CLASSES)}")
        labels[i, [column[o] for o in objects]] = 1
    return write_dataset(
        folder, name=name, labels=labels, class_names=VOC_CLASSES, image_paths=[f"{i}.jpg" for i in ids],
        image_root=str((root / "JPEGImages").relative_to(folder)), image_size=image_size,
        partition=np.array(partition, np.uint8),
        extra_manifest={"source": f"PASCAL VOC {year} ({SOURCES[name]['page']}); {SOURCES[name]['license']}; "
                                  f"partition 1 = {VOC_SIDES[name][1]}, 0 = {VOC_SIDES[name][0]}"},
    )


# --------------------------------------------------------------------------------------------------- dispatch
def _local_files(name: str, download_root, manual_root, progress: bool) -> dict[str, Path]:
    out = {}
    for entry in SOURCES[name]["files"]:
        manual_dir = Path(manual_root) / name
        if entry.get("optional") and not (manual_dir / entry["name"]).is_file():
            continue  # optional archives are used only when placed by hand
        out[entry["name"]] = fetch(entry["url"], Path(download_root) / name, entry["md5"], entry["bytes"],
                                   progress, filename=entry["name"], manual_dir=manual_dir)
    return out


def prepare_dataset(name: str, params: dict | None, folder, *, download_root=DOWNLOAD_ROOT,
                    manual_root=MANUAL_ROOT, progress: bool = True) -> dict:
    """The download stage: write dataset `name` into `folder` (embedded sets are generated, real sets fetched or
    taken from ``data/manual/<name>/`` and converted); return the manifest."""
    from . import embedded
    from .catalog import dataset_block

    if name in embedded.EMBEDDED:
        return embedded.make_dataset(name, params, folder)
    if name in SOURCES and name not in REAL_SCHEMAS:
        raise HashbenchError(f"dataset: {name!r} has download sources but no converter yet; use one of "
                             f"{', '.join(REAL_SCHEMAS)} or an embedded set")
    p = dataset_block(name, params)  # the name, the converter's params and the split protocol, checked
    files = _local_files(name, download_root, manual_root, progress)
    if name == "cifar10":
        return convert_cifar10_binary(files["cifar-10-binary.tar.gz"], folder)
    if name == "cub200":
        return convert_cub200(files["CUB_200_2011.tgz"], folder, image_size=p["image_size"])
    if name == "stanford-dogs":
        return convert_stanford_dogs(files["images.tar"], files["lists.tar"], folder, image_size=p["image_size"])
    if name in VOC_SIDES:
        return convert_voc(list(files.values()), folder, name, image_size=p["image_size"])
    if name == "mirflickr25k":
        return convert_mirflickr25k(files["mirflickr25k.zip"], files["mirflickr25k_annotations_v080.zip"], folder,
                                    image_size=p["image_size"])
    return convert_nuswide(files["Groundtruth.zip"], files["ConceptsList.zip"], folder, subset=p["subset"],
                           image_list_zip=files.get("ImageList.zip"), image_root=p["image_root"],
                           image_size=p["image_size"], tags_zip=files.get("NUS_WID_Tags.zip"))


def shared_data_dir() -> Path:
    """The shared real-annotation folder: $HASHBENCH_SHARED, else ../shared/data from the repository root."""
    env = os.environ.get("HASHBENCH_SHARED")
    if env:
        return Path(env)
    from_cwd = Path.cwd().parent / "shared" / "data"  # stages and tests run from the repository root
    if from_cwd.is_dir():
        return from_cwd
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"  # src/hashbench/ -> repo root -> ..
