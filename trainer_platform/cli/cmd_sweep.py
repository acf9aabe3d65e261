"""`trainer-platform sweep SWEEP_DIR`: which setting won. Each run's swept values, state and metric, the best run,
and each axis against the metric; `--report` also writes the sweep's HTML report (the `report` command's)."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table
from rich.text import Text

from trainer_platform.cli.common import CliError, row, state_text
from trainer_platform.console.keys import fmt
from trainer_platform.sweep.manifest import SweepDirError
from trainer_platform.sweep.objective import Objective
from trainer_platform.sweep.summary import AxisRow, SweepSummary, summarize_sweep

NAME = "sweep"
HELP = "a sweep's runs with their swept values, state and metric; the best run; each axis vs the metric"
ORDER = 35


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep_dir", help="the sweep's directory (run_root/<sweep name>)")
    parser.add_argument("--metric", help="metric of metrics.jsonl to compare by (default: the algorithm's main one)")
    parser.add_argument("--reduce", choices=("final", "best"), help="the run's final or best value (default final)")
    parser.add_argument("--mode", choices=("min", "max"), help="which way is better (default: the metric's own)")
    parser.add_argument("--json", action="store_true", help="the summary as one JSON object, for scripts")
    parser.add_argument(
        "--report",
        nargs="?",
        const="",
        metavar="FILE",
        help="also write the sweep's HTML report (`trainer-platform report`; default SWEEP_DIR/report.html)",
    )


def _objective(args: argparse.Namespace, summary: SweepSummary) -> Objective | None:
    if args.metric is None and args.reduce is None and args.mode is None:
        return None
    base = summary.objective
    metric = args.metric or base.metric
    return Objective(
        metric=metric,
        reduce=args.reduce or base.reduce,
        mode=args.mode or (base.mode if args.metric is None else "min"),
        label=None if args.metric else base.label,
    )


def run(args: argparse.Namespace, out: Console) -> int:
    try:
        summary = summarize_sweep(args.sweep_dir)
        objective = _objective(args, summary)
        if objective is not None:
            summary = summarize_sweep(args.sweep_dir, objective)
    except SweepDirError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        _print(summary, out)
    if args.report is not None:
        from trainer_platform.cli import cmd_report

        report_out = Console(stderr=True) if args.json else out  # stdout stays one JSON object
        return cmd_report.run(argparse.Namespace(target=args.sweep_dir, output=args.report or None), report_out)
    return 0


def _print(summary: SweepSummary, out: Console) -> None:
    manifest, objective = summary.manifest, summary.objective
    launcher = (manifest.get("launcher") or {}).get("name", "?")
    out.print(
        Text(
            f"sweep {manifest.get('name')}: {len(summary.runs)} runs, {manifest.get('sweeper', 'grid')}, "
            f"launcher {launcher}; metric: {objective.title}"
        )
    )
    table = Table(show_edge=False, pad_edge=False)
    for column in ("#", *summary.axes, "state", objective.label or objective.names[0], "step"):
        table.add_column(column, overflow="fold")
    top = summary.best
    for i, r in enumerate(summary.runs, 1):
        marker = Text("*", style="bold green") if top is r else Text("")
        row(
            table,
            Text.assemble(str(i), marker),
            *(_cell(r.values.get(k, "-")) for k in summary.axes),
            state_text(r.state),
            fmt(r.value),
            "-" if r.step is None else str(r.step),
        )
    out.print(table)
    for r in summary.runs:
        if r.stop_reason is not None:
            out.print(Text(f"stopped early: {r.name} by {r.stop_reason}", style="yellow"))
    if top is None:
        out.print(Text(f"no run logged {', '.join(objective.names)} yet"))
    else:
        values = ", ".join(f"{k}={_cell(v)}" for k, v in top.values.items()) or top.name
        number = summary.runs.index(top) + 1
        out.print(Text(f"best: #{number} ({values}): {fmt(top.value)} at step {top.step}", style="bold"))
        out.print(Text(f"  run dir: {summary.path / top.name}"))
    for key in summary.axes:
        axis = Table(title=f"{key} vs {objective.label or objective.names[0]}", show_edge=False, pad_edge=False)
        for column in (key, "runs", "scored", "mean", "best"):
            axis.add_column(column)
        for a in _numeric_order(summary.by_axis(key)):
            row(axis, _cell(a.value), str(a.runs), str(a.scored), fmt(a.mean), fmt(a.best))
        out.print(axis)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _cell(text: str) -> str:
    """A swept value for a table: numbers in 4 significant digits (a search samples long floats)."""
    number = _number(text)
    return text if number is None or len(text) <= 8 else fmt(number)


def _numeric_order(rows: list[AxisRow]) -> list[AxisRow]:
    """An axis's rows by value when every value is a number (the trend reads top to bottom), else as listed."""
    if all(_number(r.value) is not None for r in rows):
        return sorted(rows, key=lambda r: _number(r.value) or 0.0)
    return rows
