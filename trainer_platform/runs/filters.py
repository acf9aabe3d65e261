"""Which runs `runs` shows: filters on state, algorithm, model, sweep, creation date and name, checked up front."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from trainer_platform.runs.catalog import RunSummary
from trainer_platform.runs.status import LOST, STATES

# what `--status` accepts: the stored states, what a launcher reports for a vanished job, a dry run, a broken dir
SHOWN_STATES = (*STATES, LOST, "dry run", "unreadable")
_RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class FilterError(ValueError):
    """A filter value that cannot be used; the message names the option and how to fix it."""


def parse_when(option: str, text: str, now: datetime | None = None, *, end_of_day: bool = False) -> datetime:
    """A point in time from `2026-12-01`, `2026-12-01T08:00`, an ISO time with offset, or an age (`90m`, `12h`,
    `7d`, `2w`: that long before now). Times without an offset are UTC; with `end_of_day` a bare date means the
    last moment of that day (an inclusive upper bound)."""
    value = text.strip()
    match = _RELATIVE.match(value)
    if match:
        ago = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return (now or datetime.now(timezone.utc)) - ago
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(
            f"{option} {text!r} is not a date; use YYYY-MM-DD, YYYY-MM-DDTHH:MM (UTC) or an age such as 12h or 7d"
        ) from None
    if end_of_day and len(value) == 10:
        when += timedelta(days=1, microseconds=-1)
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def check_states(states: list[str]) -> list[str]:
    """The states asked for (comma-separated values allowed), each checked against SHOWN_STATES."""
    wanted = [s.strip() for value in states for s in value.split(",") if s.strip()]
    for state in wanted:
        if state not in SHOWN_STATES:
            raise FilterError(f"--status {state!r} is not a run state; allowed: {', '.join(SHOWN_STATES)}")
    return wanted


@dataclass(frozen=True)
class RunFilter:
    """Every set field must match (glob patterns for names; any of the listed states)."""

    states: tuple[str, ...] = ()
    # algorithm name (grpo, sft, ...) or kind (rl, sft, dpo); glob
    algorithm: str | None = None
    # model preset name; glob
    model: str | None = None
    # the sweep folder (between the root and the run dir); glob
    sweep: str | None = None
    # glob on the run's path under the root and on its own folder name
    name: str | None = None
    # creation time bounds (inclusive)
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, run: RunSummary, state: str) -> bool:
        """Whether `run` passes, with `state` its state as shown (the launcher's live view where there is one)."""
        if self.states and state not in self.states:
            return False
        if self.algorithm and not _any_glob(self.algorithm, run.algorithm, run.kind):
            return False
        if self.model and not _any_glob(self.model, run.model):
            return False
        if self.sweep and not _any_glob(self.sweep, run.sweep):
            return False
        if self.name and not _any_glob(self.name, run.name, run.name.rpartition("/")[2]):
            return False
        if self.since or self.until:
            created = _created(run)
            if created is None:
                return False
            if self.since and created < self.since:
                return False
            if self.until and created > self.until:
                return False
        return True


def _any_glob(pattern: str, *values: str | None) -> bool:
    return any(value is not None and fnmatch.fnmatchcase(value, pattern) for value in values)


def _created(run: RunSummary) -> datetime | None:
    if not run.created:
        return None
    try:
        when = datetime.fromisoformat(run.created)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
