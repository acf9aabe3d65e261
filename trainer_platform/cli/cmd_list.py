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
from trainer_platform.runs import RunDir, RunDirError, list_runs

NAME = "list"
HELP = "table of the runs under a folder: state, step/target, main metric, checkpoint"
ORDER = 40

# the metric that says how a run is doing, first one present wins: (metrics.jsonl key, column label)
MAIN_METRICS = (
    ("critic/score/mean", "reward"),  # RL: mean sequence score of the rollouts
    ("train/loss", "loss"),  # SFT and DPO
    ("actor/pg_loss", "pg_loss"),
)
_TARGET_KEY = "trainer.total_training_steps="  # how many steps the verl job was asked for (every trainer)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", nargs="?", default="runs")


def main_metric(values: dict[str, Any]) -> str:
    """`label value` of the run's main metric, or '-'."""
    for key, label in MAIN_METRICS:
        value = values.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return f"{label} {value:.3g}"
    return "-"


def target_steps(run_dir: RunDir) -> int | None:
    """The number of steps the run's verl job was asked for (from job.json), or None."""
    try:
        argv = run_dir.read_job().argv if run_dir.job_path.exists() else ()
    except RunDirError:
        return None
    for arg in argv:
        if arg.startswith(_TARGET_KEY) and arg.removeprefix(_TARGET_KEY).isdigit():
            return int(arg.removeprefix(_TARGET_KEY))
    return None


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
        try:
            status = run_dir.read_status()
        except RunDirError:
            row(table, name, Text("unreadable", style="red"))
            continue
        step, values = run_dir.latest_metrics()
        ckpt = run_dir.last_checkpoint_step()
        row(
            table,
            name,
            state_text(launcher_state(run_dir)),
            _steps(step, target_steps(run_dir)),
            main_metric(values),
            "-" if ckpt is None else str(ckpt),
            fmt_duration(status.duration_s()),
            fmt_time(status.created)[5:16],
        )
    out.print(table)
    return 0
