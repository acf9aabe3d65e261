"""Run directories: the registry of runs, their status, metrics and provenance."""

from trainer_platform.runs.atomic import atomic_write
from trainer_platform.runs.index import list_runs
from trainer_platform.runs.rundir import NotARunDirError, RunDir, RunDirError, new_wandb_run_id
from trainer_platform.runs.status import (
    CANCELLED,
    FAILED,
    LOST,
    PENDING,
    QUEUED,
    RUNNING,
    STATES,
    STOPPED,
    SUCCEEDED,
    TERMINAL_STATES,
    Status,
    utc_now,
)

__all__ = [
    "CANCELLED",
    "FAILED",
    "LOST",
    "PENDING",
    "QUEUED",
    "RUNNING",
    "STATES",
    "STOPPED",
    "SUCCEEDED",
    "TERMINAL_STATES",
    "NotARunDirError",
    "RunDir",
    "RunDirError",
    "Status",
    "atomic_write",
    "list_runs",
    "new_wandb_run_id",
    "utc_now",
]
