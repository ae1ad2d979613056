"""Streaming data for training and encoding: row sources, a torch Dataset of named fields, batch plans, DataLoaders.

A *source* gives rows by position: `ArrayRows` over an array in memory (tests, the Python API, labels), or
`StoredRows` over one field of a dataset folder, opened lazily in whichever process reads it (each DataLoader worker
opens its own HDF5 handle; image files are decoded in the workers at their original size). Nothing reads a whole
field: memory grows with the batch, not with the dataset.

A batch plan (`Shuffled`, `ClassBalanced`, `Cycled`) turns (seed, epoch, global steps, rank, world size) into this
process's batches of positions, and every item gets its own augmentation seed from (seed, stream, step, rank). The
transforms draw from torch's global CPU generator, re-seeded per item and restored after the batch, so the order and
the augmentation are functions of the params only: the same for any number of workers, and a run resumed at any step
sees the batches an uninterrupted run would have seen.
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from ..data import open_dataset, open_image
from ..errors import HashbenchError
from ..sampling import class_balanced_batch
from ..transforms import split_random
from .runtime import place


# ------------------------------------------------------------------------------------------------------ sources
class ArrayRows:
    """Rows of an array held in memory."""

    def __init__(self, array: np.ndarray):
        self.array = np.asarray(array)

    def __len__(self) -> int:
        return len(self.array)

    def rows(self, positions: np.ndarray) -> list:
        return list(self.array[positions])

    def fingerprint(self) -> str:
        a = np.ascontiguousarray(self.array)
        return hashlib.sha256(f"{a.dtype}{a.shape}".encode() + a.tobytes()).hexdigest()


class StoredRows:
    """Rows `index` of `field` ("images" or "text") of a dataset folder, read on demand. Image files come back as
    PIL images at their original size, stored images as uint8 arrays (H, W, C)."""

    def __init__(self, folder, field: str, index):
        self.folder, self.field = Path(folder).resolve(), field
        self.index = np.asarray(index, dtype=np.int64)
        self._dataset, self._pid = None, None

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self):  # a worker started by spawn opens its own handle
        return {**self.__dict__, "_dataset": None, "_pid": None}

    def _open(self):
        if self._pid != os.getpid():  # a forked worker must not read through its parent's HDF5 handle
            self._dataset, self._pid = open_dataset(self.folder), os.getpid()
        return self._dataset

    def rows(self, positions: np.ndarray) -> list:
        ds, index = self._open(), self.index[positions]
        if self.field == "text":
            return list(ds.text(index))
        if ds.image_root is None:  # images stored in the HDF5 file
            return list(ds.images(index))
        return [open_image(path) for path in ds.image_files(index)]

    def fingerprint(self) -> str:
        manifest = (self.folder / "manifest.json").read_bytes()
        return hashlib.sha256(manifest + self.field.encode() + self.index.tobytes()).hexdigest()


def as_rows(value):
    """A source for `value`: arrays are wrapped, sources pass through, None stays None."""
    if value is None or isinstance(value, (ArrayRows, StoredRows)):
        return value
    return ArrayRows(value)


# ------------------------------------------------------------------------------------------------------ dataset
@dataclass
class Field:
    """One named entry of every item: rows from `source`, through `transform` when given (images)."""

    source: object
    transform: object = None

    def __post_init__(self):
        self.source = as_rows(self.source)
        self.fixed, self.random = split_random(self.transform) if self.transform is not None else (None, None)

    def apply(self, values: list, seeds) -> list:
        """The transformed values: the part before the first random step at once for equal-sized stored rows
        (one call on the stacked batch), then per item with torch's CPU generator seeded by the item's seed."""
        if self.transform is None:
            return [torch.as_tensor(v) for v in values]
        if values and all(isinstance(v, np.ndarray) for v in values) and len({v.shape for v in values}) == 1:
            # stored (H, W, C) rows -> one contiguous (N, C, H, W) tensor (a channels-last view would send small
            # images down PyTorch's slower channels-last kernels)
            values = list(self.fixed(torch.from_numpy(np.ascontiguousarray(np.stack(values).transpose(0, 3, 1, 2)))))
        else:
            values = [self.fixed(_image_input(v)) for v in values]
        if self.random is None:
            return values
        out = []
        for value, seed in zip(values, seeds):
            torch.default_generator.manual_seed(int(seed))
            out.append(self.random(value))
        return out


def _image_input(value):
    """A stored uint8 row (H, W, C) as a contiguous (C, H, W) tensor; PIL images pass as they are."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value.transpose(2, 0, 1)))
    return value


class Items(torch.utils.data.Dataset):
    """Items with named fields, fetched a batch at a time by keys (position, augmentation seed); each item also
    carries its `index` (position). A source shared by two fields is read once per batch."""

    def __init__(self, fields: dict[str, Field]):
        self.fields = fields
        self.n = len(next(iter(fields.values())).source)

    def __len__(self) -> int:
        return self.n

    def __getitems__(self, keys: list) -> list[dict]:
        positions = np.fromiter((k[0] for k in keys), dtype=np.int64, count=len(keys))
        items = [{"index": int(p)} for p in positions]
        read = {}
        # Per-item work is tiny: one intra-op thread (parallel regions on a busy machine wait for a descheduled
        # second thread), and torch's CPU generator seeded per item, then put back as it was.
        threads, state = torch.get_num_threads(), torch.default_generator.get_state()
        torch.set_num_threads(1)
        try:
            for name, f in self.fields.items():
                if id(f.source) not in read:
                    read[id(f.source)] = f.source.rows(positions)
                for item, value in zip(items, f.apply(read[id(f.source)], (k[1] for k in keys))):
                    item[name] = value
        finally:
            torch.default_generator.set_state(state)
            torch.set_num_threads(threads)
        return items

    def __getitem__(self, key):
        return self.__getitems__([key])[0]


# ------------------------------------------------------------------------------------------------- batch plans
def _rng(*keys) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in keys])


class Shuffled:
    """Each epoch a seeded permutation, split between processes as torch's DistributedSampler splits it (padded
    with its first items to a multiple of the world size; process r takes every world-th item from r), then cut into
    batches. `drop_last` drops a short last batch; `merge_lone` adds a last batch of one item to the one before
    (BatchNorm needs two items in train mode)."""

    def __init__(self, n: int, batch_size: int, drop_last: bool = False, merge_lone: bool = False):
        self.n, self.batch_size, self.drop_last, self.merge_lone = n, batch_size, drop_last, merge_lone

    def _starts(self, world: int) -> list[int]:
        per_rank = math.ceil(self.n / world)
        last = per_rank - self.batch_size + 1 if self.drop_last else per_rank
        starts = list(range(0, max(last, 0), self.batch_size))
        if self.merge_lone and len(starts) > 1 and per_rank - starts[-1] == 1:
            starts.pop()
        return starts

    def steps(self, world: int) -> int:
        return len(self._starts(world))

    def batches(self, key: tuple, epoch: int, steps: range, rank: int, world: int) -> list[np.ndarray]:
        order = _rng(*key, epoch).permutation(self.n)
        order = np.concatenate([order, order[:math.ceil(self.n / world) * world - self.n]])[rank::world]
        starts = self._starts(world)
        ends = [s + self.batch_size for s in starts] if self.drop_last else starts[1:] + [len(order)]
        return [order[s:e] for s, e in zip(starts, ends)]


class ClassBalanced:
    """Batches of `classes` distinct classes x `per_class` items each (``sampling.class_balanced_batch``), drawn
    afresh for every batch; N // batch size batches per epoch, shared between the processes."""

    def __init__(self, labels: np.ndarray, classes: int, per_class: int):
        self.labels, self.classes, self.per_class = labels, classes, per_class
        self.per_epoch = max(1, len(labels) // (classes * per_class))

    def steps(self, world: int) -> int:
        return max(1, self.per_epoch // world)

    def batches(self, key: tuple, epoch: int, steps: range, rank: int, world: int) -> list[np.ndarray]:
        rng = _rng(*key, epoch, rank)
        return [class_balanced_batch(self.labels, self.classes, self.per_class, rng) for _ in steps]


class Cycled:
    """Iteration-based: batches of `size` without replacement from seeded permutations, a new one after each pass
    (a short last batch is dropped). Step s of process r takes batch s * world + r of that endless sequence; an
    epoch is one pass."""

    def __init__(self, n: int, size: int):
        self.n, self.size = n, min(size, n)
        self.per_pass = max(1, n // self.size)
        self._cached = (None, None)

    def steps(self, world: int) -> int:
        return max(1, self.per_pass // world)

    def batches(self, key: tuple, epoch: int, steps: range, rank: int, world: int) -> list[np.ndarray]:
        out = []
        for step in steps:
            turn, k = divmod(step * world + rank, self.per_pass)
            if self._cached[0] != (key, turn):
                self._cached = ((key, turn), _rng(*key, turn).permutation(self.n))
            out.append(self._cached[1][k * self.size:(k + 1) * self.size])
        return out


@dataclass
class Stream:
    """What one DataLoader feeds the loss: named fields and the plan of its batches."""

    fields: dict[str, Field]
    plan: object  # Shuffled | ClassBalanced | Cycled


@dataclass
class Plan:
    """A method's training data: its streams (the first one sets the steps per epoch) and its length, in `epochs`
    or, for iteration-based methods, in `iterations` (epochs of the first stream's steps, the last one cut)."""

    streams: dict[str, Stream]
    epochs: int | None = None
    iterations: int | None = None
    name: str = field(default="train")


def item_seeds(key: tuple, step: int, rank: int, n: int) -> np.ndarray:
    """One augmentation seed per item of a batch."""
    return np.random.SeedSequence([int(k) for k in (*key, step, rank)]).generate_state(n)


# ------------------------------------------------------------------------------------------------- data loaders
class Batches(Sampler):
    """The batch sampler of a loader: the list of key batches set before each pass."""

    def __init__(self):
        super().__init__()
        self.batches: list[list[tuple]] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def loader(items: Items, workers: int, pin_memory: bool) -> DataLoader:
    """A DataLoader over `items` whose batches are set through `.batch_sampler.batches`; it never touches torch's
    global generator (its own one seeds the workers, which draw nothing from it)."""
    return DataLoader(items, batch_sampler=Batches(), num_workers=workers, pin_memory=pin_memory,
                      persistent_workers=workers > 0, generator=torch.Generator().manual_seed(0))


def iterate(data: DataLoader):
    """The batches of `data`; a HashbenchError raised in a worker process (a missing or unreadable file) comes back
    from PyTorch with the worker's traceback in its text: it is raised again as its own line."""
    batches = iter(data)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except HashbenchError as err:
            raise HashbenchError(str(err).rsplit("HashbenchError: ", 1)[-1].strip()) from None
        yield batch


@torch.no_grad()
def map_batches(fn, rows, transform, batch_size: int, width: int, workers: int = 0,
                device: torch.device | None = None, desc: str | None = None) -> torch.Tensor:
    """fn over `rows` (an array or a source) in order, batch by batch through `transform` (None: as stored), the
    outputs concatenated on the CPU ((0, width) for no rows). Stacked views (WSDHQ's 10 crops: a batch (B, V, C, H, W)) are averaged."""
    from tqdm.auto import tqdm

    device = device or torch.device("cpu")
    items = Items({"x": Field(rows, transform)})
    data = loader(items, workers, device.type == "cuda")
    data.batch_sampler.batches = [[(i, 0) for i in range(s, min(s + batch_size, len(items)))]
                                  for s in range(0, len(items), batch_size)]
    out = []
    for batch in tqdm(iterate(data), total=len(data), desc=desc, unit="batch", leave=False, disable=desc is None):
        x = place(batch["x"], device)
        if x.dim() == 5:
            b, v = x.shape[:2]
            y = fn(x.flatten(0, 1)).float()
            out.append(y.view(b, v, -1).mean(1).cpu())
        else:
            out.append(fn(x).float().cpu())
    return torch.cat(out) if out else torch.zeros((0, width))
