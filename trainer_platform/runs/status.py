"""A run's lifecycle state as stored in `status.json`: the states, their timestamps, and the exit code."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Final

PENDING: Final = "pending"
# submitted: the scheduler or remote host has the job, which has not started yet
QUEUED: Final = "queued"
RUNNING: Final = "running"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"
# ended by a diagnostics rule (trainer_platform/diagnostics) with its last checkpoint kept; `stop_reason` says why
STOPPED: Final = "stopped"
# Not stored: what a launcher reports for a `running` status whose process is gone without a final word.
LOST: Final = "lost"

STATES: Final = (PENDING, QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, STOPPED)
TERMINAL_STATES: Final = frozenset({SUCCEEDED, FAILED, CANCELLED, STOPPED})

# The fields status.json always has; any other field a launcher writes is kept in `Status.extra`.
_KNOWN = ("state", "exit_code", "created", "started", "finished", "host", "pid")


def utc_now() -> str:
    """The current time as a UTC ISO-8601 string with seconds precision, e.g. `2025-01-31T12:00:00+00:00`."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def parse_time(value: str | None) -> datetime | None:
    """A timestamp written by `utc_now` back as an aware datetime (None stays None)."""
    return datetime.fromisoformat(value) if value else None


def check_state(state: str) -> str:
    """Return `state` if it is one a run can be in, else raise ValueError listing the allowed states."""
    if state not in STATES:
        raise ValueError(f"unknown run state {state!r}; allowed: {', '.join(STATES)}")
    return state


def exit_code_from_returncode(returncode: int) -> int:
    """A subprocess return code as a shell exit code: killed by signal N (returncode -N) becomes 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass(frozen=True)
class Status:
    """The content of a run's status.json."""

    # one of STATES
    state: str
    # the job's exit code once it finished (shell convention: 128 + N when killed by signal N)
    exit_code: int | None = None
    # UTC ISO times: run dir created, job started, job finished
    created: str | None = None
    started: str | None = None
    finished: str | None = None
    # where the job's main process runs (host name and pid), once started
    host: str | None = None
    pid: int | None = None
    # any further fields a launcher recorded (e.g. a scheduler's job id, cancel_requested); writing None drops one
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        """Whether the run has finished (succeeded, failed, cancelled or stopped)."""
        return self.state in TERMINAL_STATES

    def duration_s(self) -> float | None:
        """Seconds from start to finish (or to now while running); None before the job started."""
        start = parse_time(self.started)
        if start is None:
            return None
        end = parse_time(self.finished) or datetime.now(timezone.utc)
        return (end - start).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.extra)
        data.update({k: getattr(self, k) for k in _KNOWN})
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Status:
        state = data.get("state")
        if not isinstance(state, str):
            raise ValueError(f"status has no valid 'state' field: {dict(data)!r}")
        check_state(state)
        exit_code = data.get("exit_code")
        pid = data.get("pid")
        return cls(
            state=state,
            exit_code=None if exit_code is None else int(exit_code),
            created=data.get("created"),
            started=data.get("started"),
            finished=data.get("finished"),
            host=data.get("host"),
            pid=None if pid is None else int(pid),
            extra={k: v for k, v in data.items() if k not in _KNOWN and v is not None},
        )
