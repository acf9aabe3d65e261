"""`trainer-platform …`: manage runs from their run directory alone, in any process, whatever launcher ran them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from trainer_platform.errors import SpecError
from trainer_platform.runs import CANCELLED, PENDING, RUNNING, RunDir, RunDirError, list_runs

# metric keys shown first by `status` (substring match, in this order); the rest follow alphabetically
_KEY_METRICS = ("loss", "score", "reward", "acc", "val", "entropy", "kl", "lr", "response_length")
_SHOWN_METRICS = 8


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def _launcher_state(run_dir: RunDir) -> str:
    """The run's state as its launcher sees it (liveness checked), falling back to status.json."""
    from launchers.base import UnknownLauncherError, handle_of, launcher_for

    status = run_dir.read_status()
    state = status.state
    if state == PENDING and status.extra.get("dry_run"):
        return "dry run"  # written by `dry_run=true`: recorded, never launched
    if run_dir.load_handle() is None or state != RUNNING:
        return state
    try:
        handle = handle_of(run_dir)
        return launcher_for(handle).status(handle)
    except (UnknownLauncherError, OSError):
        return state


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _fmt_time(value: str | None) -> str:
    """A stored UTC ISO time, short: `2025-01-31 12:00:00`."""
    return value.replace("T", " ").removesuffix("+00:00") if value else "-"


def _fmt_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _pick_metrics(values: dict[str, Any]) -> list[tuple[str, Any]]:
    numeric = {k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}

    def rank(key: str) -> tuple[int, str]:
        hits = [i for i, pattern in enumerate(_KEY_METRICS) if pattern in key.lower()]
        return (hits[0] if hits else len(_KEY_METRICS), key)

    return [(k, numeric[k]) for k in sorted(numeric, key=rank)[:_SHOWN_METRICS]]


def _row(table: Table, *cells: str | Text) -> None:
    """Add a row with every cell as literal text (paths and commands hold brackets rich would read as markup)."""
    table.add_row(*(cell if isinstance(cell, Text) else Text(cell) for cell in cells))


def _state_text(state: str) -> Text:
    style = {"succeeded": "green", "failed": "red", "lost": "red", "cancelled": "yellow", "running": "cyan"}
    return Text(state, style=style.get(state, ""))


def cmd_status(args: argparse.Namespace, out: Console) -> int:
    run_dir = RunDir.open(args.run_dir)
    status = run_dir.read_status()
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    _row(table, "run", str(run_dir.path))
    _row(table, "state", _state_text(_launcher_state(run_dir)))
    _row(table, "exit code", "-" if status.exit_code is None else str(status.exit_code))
    _row(table, "created", _fmt_time(status.created))
    _row(table, "started", _fmt_time(status.started))
    _row(table, "finished", _fmt_time(status.finished))
    _row(table, "duration", _fmt_duration(status.duration_s()))
    if status.host:
        _row(table, "host / pid", f"{status.host} / {status.pid}")
    _row(table, "launcher", str(status.extra.get("launcher", "-")))
    step, values = run_dir.latest_metrics()
    _row(table, "last metrics step", "-" if step is None else str(step))
    for key, value in _pick_metrics(values):
        _row(table, f"  {key}", _fmt_value(value))
    ckpt = run_dir.last_checkpoint_step()
    _row(table, "last checkpoint", "-" if ckpt is None else f"step {ckpt} ({run_dir.checkpoints_dir})")
    _row(table, "W&B run id", run_dir.wandb_run_id or "-")
    if run_dir.job_path.exists():
        try:
            _row(table, "command", Text(run_dir.read_job().shell_line()))
        except RunDirError as e:  # still show the rest of the status
            _row(table, "command", Text(str(e), style="red"))
    out.print(table)
    return 0


def cmd_logs(args: argparse.Namespace, out: Console) -> int:
    from launchers.base import handle_of, launcher_for

    run_dir = RunDir.open(args.run_dir)
    if run_dir.load_handle() is None:
        lines = run_dir.iter_log(follow=False)
    else:
        handle = handle_of(run_dir)
        lines = launcher_for(handle).logs(handle, follow=args.follow)
    for line in lines:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    return 0


def cmd_cancel(args: argparse.Namespace, out: Console) -> int:
    from launchers.base import handle_of, launcher_for

    run_dir = RunDir.open(args.run_dir)
    status = run_dir.read_status()
    if status.terminal:
        out.print(Text(f"{run_dir.path}: already {status.state}; nothing to cancel"))
        return 0
    if run_dir.load_handle() is None:
        if status.state != PENDING:
            raise CliError(f"{run_dir.path} is {status.state} but has no handle.json; stop its process by hand")
        run_dir.write_status(CANCELLED)
    else:
        handle = handle_of(run_dir)
        launcher_for(handle).cancel(handle)
    out.print(Text(f"{run_dir.path}: {run_dir.read_status().state}"))
    return 0


def cmd_list(args: argparse.Namespace, out: Console) -> int:
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
            _row(table, str(run_dir.path.relative_to(root.absolute())), Text("unreadable", style="red"))
            continue
        step, _ = run_dir.latest_metrics()
        ckpt = run_dir.last_checkpoint_step()
        _row(
            table,
            str(run_dir.path.relative_to(root.absolute())),
            _state_text(_launcher_state(run_dir)),
            _fmt_time(status.created)[5:16],
            _fmt_duration(status.duration_s()),
            "-" if step is None else str(step),
            "-" if ckpt is None else str(ckpt),
            str(status.extra.get("launcher", "-")),
        )
    out.print(table)
    return 0


def cmd_resume(args: argparse.Namespace, out: Console) -> int:
    run_dir = RunDir.open(args.run_dir)
    try:
        from trainer_platform.pipeline import resume_run
    except ModuleNotFoundError as e:
        if e.name != "trainer_platform.pipeline":
            raise
        raise CliError(f"{run_dir.path}: resume is not available (trainer_platform.pipeline is missing)") from None

    return resume_run(run_dir.path, args.overrides) if args.overrides else resume_run(run_dir.path)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainer-platform", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace, Console], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    add("status", cmd_status, "state, times, latest metrics and checkpoint of a run").add_argument("run_dir")
    logs = add("logs", cmd_logs, "print a run's output (train.log)")
    logs.add_argument("run_dir")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new output until the run ends")
    add("cancel", cmd_cancel, "stop a run and everything it started").add_argument("run_dir")
    add("list", cmd_list, "table of the runs under a folder").add_argument("root", nargs="?", default="runs")
    resume = add("resume", cmd_resume, "continue a run from its last checkpoint (same run dir, same W&B run)")
    resume.add_argument("run_dir")
    resume.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="changes to the saved spec, e.g. train.steps=20"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `trainer-platform` console script; returns the exit code."""
    from launchers.base import LaunchError, UnknownLauncherError

    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2), already printed by argparse
        return e.code if isinstance(e.code, int) else 2
    out = Console(soft_wrap=False)
    try:
        return int(args.func(args, out))
    except (CliError, RunDirError, SpecError, LaunchError, UnknownLauncherError, OSError) as e:
        Console(stderr=True, soft_wrap=True).print(Text.assemble(("error: ", "bold red"), str(e)))
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
