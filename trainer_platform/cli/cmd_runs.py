"""`trainer-platform runs [ROOT]`: the runs under a run root, newest first, filtered; a table or `--json`.

Answered from the run root's index (runs/catalog.py: a cache of what the run dirs say, refreshed for the runs that
changed); a run that is not finished is shown in its launcher's live state.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from trainer_platform.cli.common import CliError, fmt_duration, fmt_time, launcher_state, row, state_text
from trainer_platform.console.keys import fmt
from trainer_platform.runs import PENDING, TERMINAL_STATES, RunDir
from trainer_platform.runs.catalog import RunSummary, catalog
from trainer_platform.runs.filters import SHOWN_STATES, FilterError, RunFilter, check_states, parse_when

NAME = "runs"
HELP = "the runs under a run root, newest first, with filters (state, algorithm, model, sweep, date, name); --json"
ORDER = 35
# rows the table shows unless --limit/--all say otherwise (--json lists every match unless --limit is given)
TABLE_LIMIT = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", nargs="?", default="runs", help="folder holding run dirs (default ./runs)")
    parser.add_argument("--status", action="append", default=[], metavar="STATE", help=", ".join(SHOWN_STATES))
    parser.add_argument("--algorithm", metavar="GLOB", help="algorithm name or kind, e.g. grpo, 'g*', rl")
    parser.add_argument("--model", metavar="GLOB", help="model preset name, e.g. 'qwen*'")
    parser.add_argument("--sweep", metavar="GLOB", help="sweep folder under the root")
    parser.add_argument("--name", metavar="GLOB", help="run name (or path under the root), e.g. '*lr=1e-5*'")
    parser.add_argument(
        "--since", metavar="WHEN", help="created at or after: YYYY-MM-DD, ISO time, or an age (12h, 7d)"
    )
    parser.add_argument("--until", metavar="WHEN", help="created at or before (a bare date includes that day)")
    parser.add_argument("--limit", type=int, metavar="N", help=f"show the newest N (table default {TABLE_LIMIT})")
    parser.add_argument("--all", action="store_true", help="show every matching run")
    parser.add_argument("--json", action="store_true", help="one JSON list of run objects, for scripts")
    parser.add_argument(
        "--no-index", action="store_true", help="read every run dir, neither using nor saving the index"
    )


def build_filter(args: argparse.Namespace) -> RunFilter:
    """The RunFilter of the command line; a bad value is a CliError naming the option."""
    try:
        return RunFilter(
            states=tuple(check_states(getattr(args, "status", []) or [])),
            algorithm=getattr(args, "algorithm", None),
            model=getattr(args, "model", None),
            sweep=getattr(args, "sweep", None),
            name=getattr(args, "name", None),
            since=parse_when("--since", args.since) if getattr(args, "since", None) else None,
            until=parse_when("--until", args.until, end_of_day=True) if getattr(args, "until", None) else None,
        )
    except FilterError as e:
        raise CliError(str(e)) from None


def shown_state(root: Path, run: RunSummary) -> str:
    """The state to show: stored for finished runs, 'dry run' for recorded-only ones, else the launcher's view."""
    if run.state in TERMINAL_STATES or run.state == "unreadable":
        return run.state
    if run.state == PENDING and run.dry_run:
        return "dry run"
    if not (root / run.name / "handle.json").exists():
        return run.state  # never submitted: no launcher to ask
    try:
        return launcher_state(RunDir(root / run.name))
    except Exception:  # noqa: BLE001 - a launcher that cannot answer leaves the stored state
        return run.state


def select(root: Path, flt: RunFilter, *, use_index: bool = True) -> list[tuple[RunSummary, str]]:
    """(summary, shown state) of the runs under `root` that pass `flt`, newest first."""
    out = []
    for run in catalog(root, use_index=use_index):
        state = shown_state(root, run)
        if flt.matches(run, state):
            out.append((run, state))
    return out


def _steps(step: int | None, target: int | None) -> str:
    return f"{'-' if step is None else step}/{target}" if target is not None else ("-" if step is None else str(step))


def duration_s(run: RunSummary) -> float | None:
    if not run.started:
        return None
    try:
        start = datetime.fromisoformat(run.started)
        end = datetime.fromisoformat(run.finished) if run.finished else datetime.now(timezone.utc)
    except ValueError:
        return None
    return (end - start).total_seconds()


def as_json(root: Path, run: RunSummary, state: str) -> dict[str, Any]:
    data = run.to_dict()
    data.update(stored_state=run.state, state=state, path=str(root / run.name), duration_s=duration_s(run))
    return data


def table(root: Path, rows: list[tuple[RunSummary, str]], *, detailed: bool) -> Table:
    """The runs table; `detailed` adds the algorithm and model columns (`runs`; `list` keeps to 80 columns)."""
    t = Table(
        title=str(root), title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
        collapse_padding=True,
    )  # fmt: skip
    t.add_column("run", overflow="fold", min_width=12, ratio=1)
    columns = [("state", 9)]
    if detailed:
        columns += [("algo", 4), ("model", 5)]
    columns += [("step", 5), ("metric", 6), ("ckpt", 4), ("time", 6), ("created", 11)]
    for column, width in columns:
        t.add_column(column, no_wrap=True, min_width=width)
    for run, state in rows:
        if run.error:
            row(t, run.name, Text("unreadable", style="red"))
            continue
        metric = "-" if run.metric_last is None else f"{run.metric} {fmt(run.metric_last)}"
        cells: list[str | Text] = [run.name, state_text(state)]
        if detailed:
            cells += [run.algorithm or "-", run.model or "-"]
        cells += [
            _steps(run.step, run.target_steps),
            metric,
            "-" if run.checkpoint is None else str(run.checkpoint),
            fmt_duration(duration_s(run)),
            fmt_time(run.created)[5:16],
        ]
        row(t, *cells)
    return t


def show(args: argparse.Namespace, out: Console, *, detailed: bool) -> int:
    root = Path(args.root).expanduser().absolute()
    if not root.is_dir():
        raise CliError(f"{root}: no such directory; pass the folder that holds run dirs (default ./runs)")
    flt = build_filter(args)
    if getattr(args, "limit", None) is not None and args.limit < 1:
        raise CliError(f"--limit {args.limit}: give a positive number of runs, or --all")
    rows = select(root, flt, use_index=not getattr(args, "no_index", False))
    limit = None if getattr(args, "all", False) else getattr(args, "limit", None)
    if limit is None and not getattr(args, "json", False) and not getattr(args, "all", False):
        limit = TABLE_LIMIT
    shown = rows if limit is None else rows[:limit]
    if getattr(args, "json", False):
        lines = ",\n".join(json.dumps(as_json(root, run, state)) for run, state in shown)
        out.file.write(f"[\n{lines}\n]\n" if lines else "[]\n")  # one run a line
        return 0
    if not rows:
        out.print(Text(f"no runs under {root}" + (" match the filters" if flt != RunFilter() else "")))
        return 0
    out.print(table(root, shown, detailed=detailed))
    if len(shown) < len(rows):
        out.print(Text(f"{len(rows) - len(shown)} older runs not shown: --limit N or --all"))
    return 0


def run(args: argparse.Namespace, out: Console) -> int:
    return show(args, out, detailed=True)
