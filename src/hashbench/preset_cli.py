"""`hashbench preset list|show|run`: the papers' settings by name (presets/, see hashbench.presets)."""
from __future__ import annotations

import shutil
import subprocess

import yaml

from . import experiment, presets
from .config import load_params
from .errors import HashbenchError


def register(subparsers) -> None:
    group = subparsers.add_parser("preset", help="the papers' settings by name: list, show, run")
    sub = group.add_subparsers(dest="preset_command", required=True, metavar="COMMAND")
    sub.add_parser("list", help="every preset").set_defaults(run=list_presets)
    show = sub.add_parser("show", help="a preset's values, each with its source")
    show.add_argument("name")
    show.set_defaults(run=show_preset)
    run = sub.add_parser("run", help="dvc exp run with the preset's values (-S preset=NAME -S key=value ...)")
    run.add_argument("name")
    run.add_argument("-S", "--set-param", action="append", default=[], metavar="KEY=VALUE",
                     help="a further override, after the preset's (as dvc exp run -S)")
    run.add_argument("--queue", action="store_true", help="queue it instead of running it now")
    run.add_argument("--exp-name", help="the experiment's name (dvc exp run --name)")
    run.add_argument("--dry-run", action="store_true", help="print the dvc command instead of running it")
    run.set_defaults(run=run_preset)


def list_presets(args) -> None:
    for name in presets.names():
        p = presets.load(name)
        blocked = f"; blocked by {', '.join(p.blocking)}" if p.blocking else ""
        print(f"{name:20} {len(p.params)} values, {len(p.pending)} pending{blocked}")


def show_preset(args) -> None:
    p = presets.load(args.name)
    print(f"{p.name}: {p.method} on {p.dataset}\n{p.paper}\n")
    width = max(len(k) for k in (*p.params, *p.pending))
    print("applied (-S):")
    for key, value in p.params.items():
        shown = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...")
        print(f"  {key:{width}} = {shown:14} {p.sources[key]}")
    if p.pending:
        print("pending (official settings hashbench cannot express yet; not applied):")
        for key, value in p.pending.items():
            block = "  [blocking]" if key in p.blocking else ""
            print(f"  {key:{width}} = {value!s:14} {p.sources[key]}{block}\n  {'':{width}}   why: {p.reasons[key]}")
    if "dataset" in p.blocking:
        print(f"blocked: dataset {p.dataset} is not in hashbench yet")
    if p.notes:
        print(f"\n{p.notes}")


def run_preset(args) -> None:
    p = presets.load(args.name)
    if p.blocking:
        raise HashbenchError(f"preset {p.name}: needs {', '.join(p.blocking)}, which hashbench lacks yet; "
                             f"a run now would measure something else")
    overrides = p.overrides()
    for item in args.set_param:  # a later value of the same key replaces the preset's (one -S per key for DVC)
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise HashbenchError(f"-S {item!r}: use KEY=VALUE")
        overrides[key] = yaml.safe_load(value)
    cmd = ["dvc", "exp", "run", *(["--queue"] if args.queue else []),
           *(["--name", args.exp_name] if args.exp_name else []), *experiment.dvc_args(overrides, load_params())]
    if args.dry_run:
        print(" ".join(cmd))
        return None
    if shutil.which("dvc") is None:
        raise HashbenchError("dvc: not found on PATH; activate the project's venv (source .venv/bin/activate)")
    return subprocess.run(cmd).returncode
