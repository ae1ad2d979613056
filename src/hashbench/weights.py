"""Pretrained weight files: fetched or placed by hand, verified by their full sha256, loaded without unpickling code.

torchvision names each file after the first 8 hex digits of its sha256 and checks only that prefix, and only when
it downloads the file; a file already in the cache is loaded as a full pickle. Here every file, downloaded or
placed, must match the full sha256 below before it is read, and it is read with ``torch.load(weights_only=True)``,
which rebuilds tensors and plain containers only. A file not in the table is refused.
"""
from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import torch

from .errors import HashbenchError

# file name -> (full sha256, bytes), as served at https://download.pytorch.org/models/<file name>. Each hash starts
# with the 8 digits in the file name; the full values were read from several independent public checksum lists.
SHA256: dict[str, tuple[str, int]] = {
    "alexnet-owt-7be5be79.pth": ("7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02", 244408911),
    "resnet18-f37072fd.pth": ("f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec", 46830571),
    "vgg16-397923af.pth": ("397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0", 553433881),
    "resnet50-0676ba61.pth": ("0676ba61b6795bbe1773cffd859882e5e297624d384b6993f7c9e683e722fb8a", 102530333),
    "resnet50-11ad3fa6.pth": ("11ad3fa62ca79e40addfd354a8ec4b7c75143b3038b8d2a807fbc68deab379ca", 102540417),
    "inception_v3_google-0cc3c7bd.pth": ("0cc3c7bd75056d25e46cba549dc184522069b81e9787eff6df84f397bd52a5ef",
                                         108949747),
}


def cache_dir() -> Path:
    """torchvision's weight cache: $TORCH_HOME/hub/checkpoints (default ~/.cache/torch/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def file_sha256(path: str | Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _check(path: Path, name: str) -> None:
    expected, size = SHA256[name]
    actual = file_sha256(path)
    if actual != expected:
        raise HashbenchError(f"{path}: sha256 {actual} is not the official {name} (expected {expected}, "
                             f"{size} bytes); replace it with the file from https://download.pytorch.org/models/"
                             f"{name}")


def _download(url: str, path: Path, name: str) -> None:
    """Download to a temporary name beside `path`; renamed only once the full sha256 matches."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{name}.part-{os.getpid()}")
    try:
        torch.hub.download_url_to_file(url, str(tmp), hash_prefix=None, progress=True)
        _check(tmp, name)
        os.replace(tmp, path)
    except HashbenchError:
        raise
    except (OSError, RuntimeError, ValueError) as err:  # urllib's URLError is an OSError
        raise HashbenchError(f"ImageNet weights {name} could not be downloaded ({type(err).__name__}); place the file "
                             f"from {url} in {path.parent} (set TORCH_HOME to use another cache folder)") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def load_state_dict(url: str) -> dict[str, torch.Tensor]:
    """The state dict at `url` (a file in SHA256): from the cache folder, or downloaded once; verified, then read
    as tensors only."""
    name = os.path.basename(url)
    if name not in SHA256:
        raise HashbenchError(f"weights {name}: no known sha256, so it is not loaded; supported files: "
                             f"{', '.join(SHA256)}")
    path = cache_dir() / name
    if path.is_file():
        _check(path, name)
    else:
        _download(url, path, name)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise HashbenchError(f"{path}: not a plain weights file ({reason}); replace it with the file from {url}")\
            from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise HashbenchError(f"{path}: not a state dict of tensors; replace it with the file from {url}")
    return state
