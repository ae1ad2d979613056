"""Checkpoints: everything a run needs to continue exactly where it stopped, saved atomically and keyed by what
determines the result.

The key is a hash of the method, bits, seed and validated params, the device type, precision and world size, a
fingerprint of every data field the method reads (the dataset's manifest and the split's indices, or the arrays),
and the hashbench source code. A checkpoint is found only under its own key, and its stored key is checked again
after reading, so a checkpoint from other params, data or code is never used. Files are written to a temporary name
and renamed (a kill -9 leaves the previous checkpoint), and read with ``torch.load(weights_only=True)``: tensors and
plain containers only; generator states that are not tensors travel as JSON text.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from ..errors import HashbenchError

FORMAT = 1


def source_hash() -> str:
    """sha256 over the hashbench package's Python sources: a checkpoint never outlives a code change."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def run_key(description: dict) -> str:
    """A short hash of a JSON-able description of the run."""
    text = json.dumps({"format": FORMAT, **description, "code": source_hash()}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


# ------------------------------------------------------------------------------------------- generator states
def capture_rng(device: torch.device | None = None) -> dict:
    """torch's (CPU, and the training GPU's when `device` is CUDA), numpy's and Python's global generators."""
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
             "numpy": json.dumps([np_state[0], *map(_plain, np_state[2:])]),
             "python": json.dumps(random.getstate())}
    if device is not None and device.type == "cuda":  # that GPU only: a resume may see other GPUs
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict, device: torch.device | None = None) -> None:
    torch.set_rng_state(state["torch"])
    name, pos, has_gauss, cached = json.loads(state["numpy"])
    np.random.set_state((name, state["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = json.loads(state["python"])
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def generator_state(rng: np.random.Generator) -> str:
    return json.dumps(rng.bit_generator.state)


def set_generator_state(rng: np.random.Generator, text: str) -> None:
    rng.bit_generator.state = json.loads(text)


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


# ------------------------------------------------------------------------------------------------- the store
class Checkpoints:
    """The checkpoint of one run: `folder`/<key>/last.pt."""

    def __init__(self, folder: Path, key: str):
        self.key = key
        self.path = Path(folder) / key / "last.pt"

    def load(self) -> dict | None:
        """The saved state, or None when there is none for this key (or it is unreadable: then it is ignored)."""
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
            print(f"note: {self.path} is not readable ({type(err).__name__}); training starts from the beginning",
                  file=sys.stderr)
            return None
        if not isinstance(state, dict) or state.get("key") != self.key:
            return None
        return state

    def save(self, state: dict) -> None:
        tmp = self.path.with_name(f".last.pt.tmp-{os.getpid()}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:  # through a file object a full disk is an OSError (a path: RuntimeError)
                torch.save({**state, "key": self.key}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as err:
            raise HashbenchError(f"{self.path}: the checkpoint could not be written ({err.strerror}); free disk space "
                                 f"or set checkpoint folder permissions") from None
        finally:
            if tmp.exists():
                tmp.unlink()

    def remove(self) -> None:
        shutil.rmtree(self.path.parent, ignore_errors=True)
