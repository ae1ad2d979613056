"""`hashbench table list|run|show`: every seed table one command away (specs in tables/, see hashbench.tables)."""
from __future__ import annotations

from pathlib import Path

from . import table_report, table_runs, tables
from .config import load_params

OUT = Path("results/tables")


def register(subparsers) -> None:
    group = subparsers.add_parser("table", help="reproduce a paper table: list, run, show")
    sub = group.add_subparsers(dest="table_command", required=True, metavar="COMMAND")
    sub.add_parser("list", help="the seed tables").set_defaults(run=list_tables)
    run = sub.add_parser("run", help="queue a table's experiments with `dvc exp run --queue` (and start them)")
    run.add_argument("name")
    run.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per cell (default 3)")
    run.add_argument("--embedded", action="store_true", help="the same rows on the table's embedded set")
    how = run.add_mutually_exclusive_group()
    how.add_argument("--start", action="store_true", help="then start the queue in the background (dvc queue start)")
    how.add_argument("--wait", action="store_true", help="then run every queued experiment here (dvc exp run --run-all)")
    run.add_argument("--jobs", type=int, default=1, help="experiments at a time when starting (default 1)")
    run.add_argument("--dry-run", action="store_true", help="print the dvc commands instead of running them")
    run.add_argument("-A", "--all-commits", action="store_true", help="count experiments of every commit as done")
    run.set_defaults(run=run_table)
    show = sub.add_parser("show", help="collect the finished experiments: Markdown, PNG and JSON")
    show.add_argument("name")
    show.add_argument("--embedded", action="store_true", help="the embedded variant's experiments")
    show.add_argument("--out", type=Path, default=OUT, help=f"folder for <name>[-embedded].md/.png/.json ({OUT})")
    show.add_argument("-A", "--all-commits", action="store_true", help="experiments of every commit, not only HEAD's")
    show.set_defaults(run=show_table)


def list_tables(args) -> None:
    for name in tables.names():
        t = tables.load(name)
        methods = sorted({r.method for r in t.rows if r.method})
        print(f"{name:18} {t.title}\n{'':18} {len(t.rows)} rows x {len(t.groups)} groups x {len(t.bits)} code lengths;"
              f" methods: {', '.join(methods)}; embedded: {t.embedded}")


def run_table(args) -> None:
    if args.seeds < 1 or args.jobs < 1:
        from .errors import HashbenchError

        raise HashbenchError(f"--seeds {args.seeds} / --jobs {args.jobs}: use integers >= 1")
    table = tables.load(args.name)
    exps = tables.experiments(table, args.embedded)
    for reason in sorted({e.skip for e in exps if e.skip}):
        print(f"skipped: {reason}")
    counts = table_runs.queue(exps, args.seeds, load_params(), dry_run=args.dry_run, all_commits=args.all_commits)
    print(", ".join(f"{v} {k}" for k, v in counts.items()) + f" ({len(exps)} configs x {args.seeds} seeds)")
    if not args.dry_run and (args.start or args.wait):
        table_runs.start(args.jobs, wait=args.wait)


def show_table(args) -> None:
    from . import plots

    table = tables.load(args.name)
    exps = tables.experiments(table, args.embedded)
    metric = {g.id: (g.metric, g.direction) for g in table.groups}
    collected = table_runs.collect(exps, table_runs.existing(args.all_commits), metric.__getitem__)
    records = table_report.finish(table_report.cells(table, collected), args.embedded)
    seeds = max((r["ours"]["n"] for r in records), default=0) or 3
    flag = " --embedded" if args.embedded else ""
    command = (f"hashbench table run {table.name}{flag} --seeds {seeds} --wait && "
               f"hashbench table show {table.name}{flag}{' -A' if args.all_commits else ''}")
    stem = args.out / f"{table.name}{'-embedded' if args.embedded else ''}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    text = table_report.markdown(table, records, args.embedded, command)
    stem.with_suffix(".md").write_text(text)
    stem.with_suffix(".json").write_text(table_report.as_json(table, records, args.embedded, command))
    plots.table_panels(table_report.panels(table, records, args.embedded), table.title, stem.with_suffix(".png"))
    print(text)
    print(f"written: {stem}.md, {stem}.png, {stem}.json")
