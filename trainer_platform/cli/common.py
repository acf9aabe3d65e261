"""What several commands share: the user-facing error, a run's live state, and the formatting of cells."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from trainer_platform.runs import PENDING, RunDir


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def launcher_state(run_dir: RunDir) -> str:
    """The run's state as its launcher sees it (liveness checked), falling back to status.json."""
    from launchers.base import UnknownLauncherError, handle_of, launcher_for

    status = run_dir.read_status()
    state = status.state
    if state == PENDING and status.extra.get("dry_run"):
        return "dry run"  # written by `dry_run=true`: recorded, never launched
    if run_dir.load_handle() is None or status.terminal:
        return state
    try:
        handle = handle_of(run_dir)
        return launcher_for(handle).status(handle)
    except (UnknownLauncherError, OSError):
        return state


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def fmt_time(value: str | None) -> str:
    """A stored UTC ISO time, short: `2025-01-31 12:00:00`."""
    return value.replace("T", " ").removesuffix("+00:00") if value else "-"


def fmt_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def row(table: Table, *cells: str | Text) -> None:
    """Add a row with every cell as literal text (paths and commands hold brackets rich would read as markup)."""
    table.add_row(*(cell if isinstance(cell, Text) else Text(cell) for cell in cells))


def state_text(state: str) -> Text:
    style = {"succeeded": "green", "failed": "red", "lost": "red", "cancelled": "yellow", "running": "cyan"}
    return Text(state, style=style.get(state, ""))
