"""Running a table through DVC and collecting what ran: `dvc exp run --queue` per experiment and seed (named
<table>[-emb]-<row>-<dataset>-<bits>-k<K>-s<seed>, sharing the cached download/split/tags stages), optionally
starting the queue, and reading finished experiments back from `dvc exp show --json`."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass

from . import experiment
from .errors import HashbenchError
from .tables import Experiment

SEED = re.compile(r"-s(\d+)$")


@dataclass
class Run:
    """One experiment as `dvc exp show` reports it."""

    name: str
    state: str  # success | failed | queued | running | ...
    params: dict
    metrics: dict


def _dvc(args: list[str], capture=True) -> str:
    if shutil.which("dvc") is None:
        raise HashbenchError("dvc: not found on PATH; activate the project's venv (source .venv/bin/activate)")
    proc = subprocess.run(["dvc", *args], capture_output=capture, text=True)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout or "").strip().splitlines() if capture else []
        detail = [line for line in lines if line.startswith("ERROR")] or lines  # not DVC's "Having any troubles?"
        raise HashbenchError(f"dvc {' '.join(args[:3])} failed: {detail[-1] if detail else f'exit {proc.returncode}'}")
    return proc.stdout if capture else ""


def existing(all_commits=False) -> dict[str, Run]:
    """Every named experiment DVC knows of (of the HEAD baseline, or of every commit), by name."""
    return parse_show(json.loads(_dvc(["exp", "show", "--json", *(["-A"] if all_commits else [])]) or "[]"))


def parse_show(rows: list) -> dict[str, Run]:
    runs = {}
    for baseline in rows:
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs") or []:
                name = rev.get("name") or exp.get("name")
                if not name:
                    continue
                data = rev.get("data") or {}
                state = (exp.get("executor") or {}).get("state") or ("failed" if rev.get("error") else "success")
                params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
                metrics = ((data.get("metrics") or {}).get("metrics/eval.json") or {}).get("data") or {}
                runs[name] = Run(name, state, params, metrics)
    return runs


def queue(exps: list[Experiment], seeds: int, base: dict, dry_run=False, all_commits=False) -> dict[str, int]:
    """Queue every runnable experiment and seed that DVC does not know yet (`-S` overrides on `base`, the
    workspace's params.yaml); returns counts by outcome."""
    counts = {"queued": 0, "already there": 0, "skipped": 0}
    known = {} if dry_run else existing(all_commits)
    for exp in exps:
        if exp.skip:
            counts["skipped"] += seeds
            continue
        for seed in range(seeds):
            name = exp.name(seed)
            if name in known and known[name].state != "failed":
                counts["already there"] += 1
                continue
            args = ["exp", "run", "--queue", "--name", name, *experiment.dvc_args({**exp.overrides, "seed": seed}, base)]
            if dry_run:
                print("dvc " + " ".join(_quote(a) for a in args))
            else:
                if name in known:  # a failed run of the same name: DVC refuses a duplicate name
                    _dvc(["exp", "remove", name])
                _dvc(args)
            counts["queued"] += 1
    return counts


def _quote(arg: str) -> str:
    return arg if re.fullmatch(r"[\w@%+=:,./-]+", arg) else "'" + arg.replace("'", "'\\''") + "'"


def start(jobs: int, wait: bool) -> None:
    """Start the queue: in the background (`dvc queue start`) or here until every queued experiment has run."""
    if wait:
        _dvc(["exp", "run", "--run-all", "-j", str(jobs)], capture=False)
    else:
        print(_dvc(["queue", "start", "-j", str(jobs)]).strip())


def collect(exps: list[Experiment], runs: dict[str, Run], metric_of) -> dict[tuple, dict]:
    """For each cell (row id, group id, bits): the values over seeds of its finished experiments.

    metric_of(group id) -> (metric key, direction). A run whose params no longer match the cell's config (the spec
    or a preset changed since) is left out and counted as stale."""
    by_base: dict[str, list[Run]] = {}
    for name, run in runs.items():
        match = SEED.search(name)
        if match:
            by_base.setdefault(name[: match.start()], []).append(run)
    cells = {}
    for exp in exps:
        found = sorted(by_base.get(exp.base, []), key=lambda r: int(SEED.search(r.name).group(1)))
        fresh = [r for r in found if r.state == "success" and _matches(r.params, exp.overrides)]
        for cell in exp.cells:
            key, direction = metric_of(cell[1])
            values = [r.metrics[key][direction] for r in fresh if direction in (r.metrics.get(key) or {})]
            cells[cell] = {"experiments": [r.name for r in fresh], "values": values, "skip": exp.skip,
                           "stale": sum(r.state == "success" for r in found) - len(fresh),
                           "unfinished": sum(r.state != "success" for r in found)}
    return cells


def _matches(params: dict, overrides: dict) -> bool:
    for key, value in overrides.items():
        try:
            if not experiment.same(experiment.lookup(params, key), value):
                return False
        except KeyError:
            if value is not None:
                return False
    return True
