"""``cifar10``: CIFAR-10 from its *binary* release (``cifar-10-binary.tar.gz``: fixed 3,073-byte records, one label
byte then 3,072 pixel bytes as R, G, B planes of 32x32), 60,000 images, test batch = partition 1.

The better-known python release stores pickles, and unpickling downloaded data can execute arbitrary code; this
project never unpickles anything, so that release is not used.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..config import Param
from ..errors import HashbenchError
from .archives import reading_tar, tar_files_by_basename
from .base import DatasetSpec, Source

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
RECORD = 3073
ARCHIVE = "cifar-10-binary.tar.gz"
# For reference only: the python release (pickles) is deliberately not supported, see the module doc.
UNSUPPORTED = Source("cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                     "c58f30108f718f92721af3b95e74349a", 170498071)


def read_cifar10_binary(archive) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(images uint8 (N, 32, 32, 3), labels int64 (N,), partition uint8 (N,) 1 = test, class names) read straight
    from ``cifar-10-binary.tar.gz`` (nothing is extracted; no pickle involved)."""
    archive = Path(archive)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    with reading_tar(archive) as tf:
        members = tar_files_by_basename(tf)
        missing = [n for n in names if n not in members]
        if missing:
            raise HashbenchError(f"{archive}: {missing[0]} not found; use the official {ARCHIVE}")
        images, labels, part = [], [], []
        for fname in tqdm(names, desc="cifar-10 batches", leave=False):
            raw = tf.extractfile(members[fname]).read()
            if len(raw) == 0 or len(raw) % RECORD:
                raise HashbenchError(f"{archive}: {fname} has {len(raw)} bytes, not a multiple of the {RECORD}-byte "
                                     f"record; the archive is corrupt")
            rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD)
            lab = rec[:, 0].astype(np.int64)
            if lab.max() > 9:
                raise HashbenchError(f"{archive}: {fname} has label {int(lab.max())}; labels must be 0..9")
            images.append(rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.append(lab)
            part.append(np.full(len(lab), 1 if fname == "test_batch.bin" else 0, dtype=np.uint8))
        classes = CLASSES
        if "batches.meta.txt" in members:
            text = tf.extractfile(members["batches.meta.txt"]).read().decode("utf-8", "replace")
            found = [line.strip() for line in text.splitlines() if line.strip()]
            if len(found) == 10:
                classes = found
    return np.concatenate(images), np.concatenate(labels), np.concatenate(part), classes


class Cifar10(DatasetSpec):
    name = "cifar10"
    title = "CIFAR-10 binary release"
    page = "https://www.cs.toronto.edu/~kriz/cifar.html"
    license = "CIFAR-10 (Krizhevsky 2009), no explicit licence; research use"
    modalities = frozenset({"image"})
    sources = (Source(ARCHIVE, f"https://www.cs.toronto.edu/~kriz/{ARCHIVE}", "c32a1d4ab5d03f1284b67883e8d87530",
                      where="the CIFAR-10 page, binary version"),)
    schema = {"seed": Param(0, int, ge=0)}
    list_formats = ()  # the items are stored pixels without file names
    # DeepHash-pytorch / GPQ `cifar10`: 100/class queries, 500/class train, database = the other 54,000
    split_default = {"protocol": "per_class", "query_per_class": 100, "train_per_class": 500,
                     "train_in_database": False}

    def convert(self, files: dict[str, Path], p: dict, folder: Path) -> dict:
        """Train + test (60,000 images; test = partition 1)."""
        images, labels, partition, classes = read_cifar10_binary(files[ARCHIVE])
        return self.write(folder, p, files, labels=np.eye(10, dtype=np.uint8)[labels], class_names=classes,
                          images=np.ascontiguousarray(images), partition=partition, single_label=True,
                          note="partition 1 = official test batch")
