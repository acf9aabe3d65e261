"""`trainer-platform list [ROOT]`: table of the runs under a folder (default ./runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from trainer_platform.cli.common import CliError, fmt_duration, fmt_time, launcher_state, row, state_text
from trainer_platform.runs import RunDirError, list_runs

NAME = "list"
HELP = "table of the runs under a folder"
ORDER = 40


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", nargs="?", default="runs")


def run(args: argparse.Namespace, out: Console) -> int:
    root = Path(args.root).expanduser()
    if not root.is_dir():
        raise CliError(f"{root.absolute()}: no such directory; pass the folder that holds run dirs (default ./runs)")
    runs = list_runs(root)
    if not runs:
        out.print(Text(f"no runs under {root.absolute()}"))
        return 0
    table = Table(title=str(root.absolute()))
    for column in ("run", "state", "created", "duration", "step", "ckpt", "launcher"):
        if column == "run":
            table.add_column(column, overflow="fold", min_width=16)
        else:
            table.add_column(column, no_wrap=True, min_width=max(len(column), 9 if column == "state" else 0))
    for run_dir in runs:
        try:
            status = run_dir.read_status()
        except RunDirError:
            row(table, str(run_dir.path.relative_to(root.absolute())), Text("unreadable", style="red"))
            continue
        step, _ = run_dir.latest_metrics()
        ckpt = run_dir.last_checkpoint_step()
        row(
            table,
            str(run_dir.path.relative_to(root.absolute())),
            state_text(launcher_state(run_dir)),
            fmt_time(status.created)[5:16],
            fmt_duration(status.duration_s()),
            "-" if step is None else str(step),
            "-" if ckpt is None else str(ckpt),
            str(status.extra.get("launcher", "-")),
        )
    out.print(table)
    return 0
