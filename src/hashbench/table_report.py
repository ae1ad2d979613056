"""A paper table, ours beside the reported numbers: Markdown (one table per column group: per code length ours as
mean ± std over seeds with n, the paper's number and the difference), a PNG (mAP against bits, one panel per
group, ours solid and the paper dashed) and a JSON of every cell. Missing cells are shown as missing, never
filled."""
from __future__ import annotations

import json
import statistics

from .tables import Table

DIRECTIONS = {"i2i": "image → image", "i2t": "image → text", "t2i": "text → image", "t2t": "text → text"}


def cells(table: Table, collected: dict[tuple, dict]) -> list[dict]:
    """One record per (row, group, bits): ours (mean, std, n, experiments) and the paper's number with its source."""
    out = []
    for row in table.rows:
        for group in table.groups:
            for i, bits in enumerate(table.bits):
                got = collected.get((row.id, group.id, bits))
                reported = row.reported.get(group.id, [None] * len(table.bits))[i]
                values = got["values"] if got else []
                mean = statistics.fmean(values) if values else None
                record = {"row": row.id, "label": row.label, "group": group.id, "dataset": group.dataset,
                          "direction": group.direction, "bits": bits, "metric": group.metric,
                          "ours": {"mean": mean, "std": statistics.stdev(values) if len(values) > 1 else None,
                                   "n": len(values), "values": values,
                                   "experiments": got["experiments"] if got else []},
                          "paper": reported, "source": row.source if reported is not None else None,
                          "diff": None, "status": _status(row, got, values)}
                out.append(record)
    return out


def _status(row, got, values) -> str:
    if row.method is None:
        return "reported only"
    if got is None:
        return "missing"
    if got["skip"]:
        return f"pending: {got['skip']}"
    if values:
        return "measured"
    extra = [f"{got['unfinished']} unfinished" if got["unfinished"] else "",
             f"{got['stale']} stale (config changed since)" if got["stale"] else ""]
    return "missing" + "".join(f", {e}" for e in extra if e)


def finish(records: list[dict], embedded: bool) -> list[dict]:
    """Differences ours - paper, only where both exist and ours ran on the paper's data."""
    for r in records:
        if not embedded and r["ours"]["mean"] is not None and r["paper"] is not None:
            r["diff"] = r["ours"]["mean"] - r["paper"]
    return records


def _num(value, digits) -> str:
    return "unknown" if value is None else f"{value:.{digits}f}"


def _ours(record, digits) -> str:
    ours = record["ours"]
    if ours["mean"] is None:
        status = record["status"]
        return "—" if status == "reported only" else ("pending" if status.startswith("pending") else status)
    spread = f" ± {ours['std']:.{digits}f}" if ours["std"] is not None else ""
    return f"{ours['mean']:.{digits}f}{spread} (n={ours['n']})"


def markdown(table: Table, records: list[dict], embedded: bool, command: str) -> str:
    d = table.digits
    where = (f"ours: the embedded set {table.embedded} with the embedded defaults (same rows, bits and protocol); "
             f"the paper's numbers are on its own data, so only orderings and signs compare" if embedded else
             "ours: the paper's data with its preset (presets/)")
    lines = [f"## {table.title}", "", f"{where}. Paper: {table.paper}. Reported numbers: {table.source}.",
             f"Made by `{command}`.", ""]
    by_key = {(r["row"], r["group"], r["bits"]): r for r in records}
    for group in table.groups:
        proto = f"mAP@{group.protocol['topk']}" + (", queries without a hit skipped" if group.protocol["zero"] ==
                                                     "skip" else "")
        lines += [f"### {group.label} ({DIRECTIONS.get(group.direction, group.direction)}, {proto})", ""]
        head = ["model", "configuration"]
        for bits in table.bits:
            head += [f"{bits} bits: ours", "paper"] + ([] if embedded else ["Δ"])
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in table.rows:
            cells_ = [row.label, row.config or (f"`{row.method}`" if row.method else "as printed")]
            for bits in table.bits:
                r = by_key[(row.id, group.id, bits)]
                cells_ += [_ours(r, d), _num(r["paper"], d)]
                if not embedded:
                    cells_.append("" if r["diff"] is None else f"{r['diff']:+.{d}f}")
            lines.append("| " + " | ".join(cells_) + " |")
        lines.append("")
    pending = sorted({r["status"][len("pending: "):] for r in records if r["status"].startswith("pending")})
    if pending:
        lines += ["Pending: " + "; ".join(pending) + ".", ""]
    if table.notes:
        lines += [table.notes, ""]
    return "\n".join(lines)


def panels(table: Table, records: list[dict], embedded: bool) -> list[dict]:
    by_key = {(r["row"], r["group"], r["bits"]): r for r in records}
    out = []
    for group in table.groups:
        lines = []
        for row in table.rows:
            rs = [by_key[(row.id, group.id, b)] for b in table.bits]
            if all(r["ours"]["mean"] is None and r["paper"] is None for r in rs):
                continue
            lines.append({"label": row.label, "bits": list(table.bits), "ours": [r["ours"]["mean"] for r in rs],
                          "std": [r["ours"]["std"] for r in rs], "paper": [r["paper"] for r in rs]})
        on = f"ours on {table.embedded}, " if embedded else ""
        out.append({"title": f"{group.label}: {DIRECTIONS.get(group.direction, group.direction)}\n{on}"
                             f"{group.metric}", "ylabel": group.metric, "lines": lines})
    return out


def as_json(table: Table, records: list[dict], embedded: bool, command: str) -> str:
    return json.dumps({"table": table.name, "title": table.title, "embedded": embedded,
                       "ours_on": table.embedded if embedded else "the paper's datasets", "command": command,
                       "paper": table.paper, "source": table.source, "bits": list(table.bits), "cells": records},
                      indent=1, ensure_ascii=False) + "\n"
