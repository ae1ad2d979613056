"""The `hashbench` console script. Each command group lives in its own module and adds its subcommands here through
a `register(subparsers)` function; user errors print one line and exit 2, as the stages do."""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import HashbenchError

# modules that each define register(subparsers): one line per command group
COMMAND_MODULES: tuple[str, ...] = (
    "hashbench.search_cli",  # encode, search, export-faiss
    "hashbench.table_cli",  # table list, run, show
    "hashbench.preset_cli",  # preset list, show, run
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hashbench", description="Use trained models (encode, search, FAISS export); reproduce the papers' tables.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except HashbenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
