"""MATLAB files: v7.3 (HDF5) through h5py, older versions through scipy.io.loadmat; neither unpickles nor runs
anything. Arrays come back in MATLAB's axis order (h5py sees them reversed; they are transposed back), and large
v7.3 image arrays are read in row blocks (:class:`MatImages`)."""
from __future__ import annotations

import io
from pathlib import Path

import h5py
import numpy as np

from ..errors import HashbenchError


def is_v73(source) -> bool:
    return isinstance(source, (str, Path)) and h5py.is_hdf5(source)


def read_mat(source, names, where: str, need: str = "all") -> dict[str, np.ndarray]:
    """Variables `names` of a .mat file (a path, or the bytes of a v5 file), in MATLAB's axis order; with
    ``need="any"`` one of them is enough (alternative names of the same variable)."""
    out = {}
    if is_v73(source):
        try:
            with h5py.File(source, "r") as f:
                for name in names:
                    if name in f and isinstance(f[name], h5py.Dataset):
                        out[name] = f[name][()].T
        except OSError as err:
            raise HashbenchError(f"{where}: not a readable MATLAB v7.3 file ({type(err).__name__})") from None
    else:
        import scipy.io

        try:
            mat = scipy.io.loadmat(io.BytesIO(source) if isinstance(source, bytes) else str(source),
                                   variable_names=list(names))
        except Exception as err:  # noqa: BLE001 - a corrupt .mat raises many kinds (MatReadError, ValueError, ...)
            raise HashbenchError(f"{where}: not a readable MATLAB file ({type(err).__name__})") from None
        out = {name: mat[name] for name in names if name in mat}
    missing = [name for name in names if name not in out]
    if missing and (need == "all" or len(missing) == len(names)):
        raise HashbenchError(f"{where}: has no variable {' or '.join(missing)}; use the official file")
    return out


class MatImages:
    """uint8 images (N, H, W, C) from a MATLAB array stored H x W x C x N: row blocks of a v7.3 file (h5py sees
    (N, C, W, H)), or the whole array of an older file."""

    def __init__(self, path: Path, names: tuple[str, ...], where: str):
        self._file = None
        if is_v73(path):
            self._file = h5py.File(path, "r")
            name = next((n for n in names if n in self._file), None)
            if name is None:
                self.close()
                raise HashbenchError(f"{where}: has no variable {' or '.join(names)}; use the official file")
            self._rows = self._file[name]
            n, c, w, h = self._check(self._rows.shape, self._rows.dtype, where, (0, 1, 2, 3))
        else:
            arrays = read_mat(path, names, where, need="any")
            data = next(arrays[n] for n in names if n in arrays)
            self._check(data.shape, data.dtype, where, (3, 2, 1, 0))
            self._rows = np.ascontiguousarray(np.transpose(data, (3, 2, 1, 0)))  # -> (N, C, W, H) as h5py sees it
            n, c, w, h = self._rows.shape
        self.shape = (n, h, w, c)
        self.dtype = np.dtype(np.uint8)

    @staticmethod
    def _check(shape, dtype, where: str, order) -> tuple[int, ...]:
        if len(shape) != 4 or np.dtype(dtype) != np.uint8:
            raise HashbenchError(f"{where}: images are {np.dtype(dtype)} {tuple(shape)}; expected uint8 H x W x C x N")
        n, c, w, h = (shape[k] for k in order)
        if c not in (1, 3):
            raise HashbenchError(f"{where}: images have {c} channels; expected 1 or 3 (H x W x C x N)")
        return n, c, w, h

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        return np.ascontiguousarray(np.transpose(self._rows[rows], (0, 3, 2, 1)))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
