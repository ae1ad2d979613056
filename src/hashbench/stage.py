"""What every stage script shares: one-line errors for user mistakes, and no partial outputs on failure."""
from __future__ import annotations

import errno
import os
import shutil
import signal
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import HashbenchError


def remove_outputs(outputs: Iterable[str | Path]) -> None:
    for out in outputs:
        path = Path(out)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def _disk_full(err: BaseException) -> bool:
    """A write that failed for lack of space or over a file-size limit (h5py reports it only in its message)."""
    text = str(err)
    return isinstance(err, OSError) and (err.errno in _FULL or "No space left" in text or "File too large" in text)


def run_stage(main: Callable[[], None], outputs: Iterable[str | Path]) -> None:
    """Run `main`; on any failure remove this stage's outputs. User errors print one line and exit 2."""
    outputs = list(outputs)
    # Over a file-size limit (ulimit -f) the kernel would kill the process with SIGXFSZ before any cleanup; ignored,
    # the write fails with EFBIG and is reported below.
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        main()
    except BaseException as err:
        remove_outputs(outputs)
        if isinstance(err, HashbenchError):
            message = str(err)
        elif _disk_full(err):
            why = os.strerror(err.errno) if err.errno in _FULL else "disk full"
            message = (f"{err.filename or ', '.join(str(o) for o in outputs)}: could not write ({why}); free disk "
                       f"space (or raise the file-size limit) and rerun")
        else:
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
