"""`trainer-platform list [ROOT]`: table of the runs under a folder (default ./runs), 80 columns wide."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from trainer_platform.cli.common import CliError, fmt_duration, fmt_time, launcher_state, row, state_text
from trainer_platform.console.keys import fmt, key_metrics
from trainer_platform.console.view import run_facts
from trainer_platform.runs import RunDirError, list_runs

NAME = "list"
HELP = "table of the runs under a folder: state, step/target, main metric, checkpoint"
ORDER = 40


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", nargs="?", default="runs")


def main_metric(kind: str | None, values: dict[str, Any]) -> str:
    """`label value` of the first key metric of the run's algorithm kind (the console's), or '-'."""
    metric = key_metrics(kind)[0]
    value = metric.value(values)
    return "-" if value is None else f"{metric.label} {fmt(value)}"


def _steps(step: int | None, target: int | None) -> str:
    return f"{'-' if step is None else step}/{target}" if target is not None else ("-" if step is None else str(step))


def run(args: argparse.Namespace, out: Console) -> int:
    root = Path(args.root).expanduser()
    if not root.is_dir():
        raise CliError(f"{root.absolute()}: no such directory; pass the folder that holds run dirs (default ./runs)")
    runs = list_runs(root)
    if not runs:
        out.print(Text(f"no runs under {root.absolute()}"))
        return 0
    table = Table(
        title=str(root.absolute()),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("run", overflow="fold", min_width=12, ratio=1)
    for column, width in (("state", 9), ("step", 5), ("metric", 6), ("ckpt", 4), ("time", 6), ("created", 11)):
        table.add_column(column, no_wrap=True, min_width=width)
    for run_dir in runs:
        name = str(run_dir.path.relative_to(root.absolute()))
        try:  # one corrupt run dir shows as unreadable, never breaks the table
            status = run_dir.read_status()
            state = launcher_state(run_dir)
            step, values = run_dir.latest_metrics()
            ckpt = run_dir.last_checkpoint_step()
            kind, target, _ = run_facts(run_dir)
        except (RunDirError, OSError, ValueError, TypeError, KeyError):
            row(table, name, Text("unreadable", style="red"))
            continue
        row(
            table,
            name,
            state_text(state),
            _steps(step, target),
            main_metric(kind, values),
            "-" if ckpt is None else str(ckpt),
            fmt_duration(status.duration_s()),
            fmt_time(status.created)[5:16],
        )
    out.print(table)
    return 0
