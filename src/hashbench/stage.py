"""What every stage script shares: one-line errors for user mistakes, and no partial outputs on failure."""
from __future__ import annotations

import shutil
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


def run_stage(main: Callable[[], None], outputs: Iterable[str | Path]) -> None:
    """Run `main`; on any failure remove this stage's outputs. User errors print one line and exit 2."""
    outputs = list(outputs)
    try:
        main()
    except HashbenchError as err:
        remove_outputs(outputs)
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except BaseException:
        remove_outputs(outputs)
        raise
