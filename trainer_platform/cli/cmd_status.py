"""`trainer-platform status RUN`: state, times, latest metrics and checkpoint of a run."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from trainer_platform.cli.common import fmt_duration, fmt_time, fmt_value, launcher_state, row, state_text
from trainer_platform.runs import RunDir, RunDirError

NAME = "status"
HELP = "state, times, latest metrics and checkpoint of a run"
ORDER = 10

# metric keys shown first (substring match, in this order); the rest follow alphabetically
_KEY_METRICS = ("loss", "score", "reward", "acc", "val", "entropy", "kl", "lr", "response_length")
_SHOWN_METRICS = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir")


def pick_metrics(values: dict[str, Any]) -> list[tuple[str, Any]]:
    numeric = {k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}

    def rank(key: str) -> tuple[int, str]:
        hits = [i for i, pattern in enumerate(_KEY_METRICS) if pattern in key.lower()]
        return (hits[0] if hits else len(_KEY_METRICS), key)

    return [(k, numeric[k]) for k in sorted(numeric, key=rank)[:_SHOWN_METRICS]]


def run(args: argparse.Namespace, out: Console) -> int:
    run_dir = RunDir.open(args.run_dir)
    status = run_dir.read_status()
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    row(table, "run", str(run_dir.path))
    row(table, "state", state_text(launcher_state(run_dir)))
    row(table, "exit code", "-" if status.exit_code is None else str(status.exit_code))
    reason = status.extra.get("stop_reason")
    if isinstance(reason, dict):
        row(table, "stopped by", f"{reason.get('rule')} at step {reason.get('step')}: {reason.get('message')}")
    row(table, "created", fmt_time(status.created))
    row(table, "started", fmt_time(status.started))
    row(table, "finished", fmt_time(status.finished))
    row(table, "duration", fmt_duration(status.duration_s()))
    if status.host:
        row(table, "host / pid", f"{status.host} / {status.pid}")
    row(table, "launcher", str(status.extra.get("launcher", "-")))
    step, values = run_dir.latest_metrics()
    row(table, "last metrics step", "-" if step is None else str(step))
    for key, value in pick_metrics(values):
        row(table, f"  {key}", fmt_value(value))
    ckpt = run_dir.last_checkpoint_step()
    row(table, "last checkpoint", "-" if ckpt is None else f"step {ckpt} ({run_dir.checkpoints_location()})")
    row(table, "W&B run id", run_dir.wandb_run_id or "-")
    if run_dir.job_path.exists():
        try:
            row(table, "command", Text(run_dir.read_job().shell_line()))
        except RunDirError as e:  # still show the rest of the status
            row(table, "command", Text(str(e), style="red"))
    out.print(table)
    return 0
