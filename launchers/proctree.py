"""Process groups on this host: who is in one, whether a pid is still the process we started, stopping a tree.

Zombies count as gone: on hosts whose init does not reap orphans (containers), a killed grandchild stays a zombie
forever, and `kill(pid, 0)` still succeeds on it. On Linux the truth comes from /proc; elsewhere from kill(0).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")
_HAS_PROC = (_PROC / "self" / "stat").exists()


@dataclass(frozen=True)
class ProcInfo:
    """The fields of /proc/<pid>/stat we need."""

    # one-letter state: R running, S sleeping, Z zombie, ...
    state: str
    # process group id
    pgrp: int
    # session id: a job started in its own session keeps it in every descendant that only changes its group
    session: int
    # start time in clock ticks since boot: with the pid, identifies a process across pid reuse
    start_ticks: int


def proc_info(pid: int) -> ProcInfo | None:
    """/proc facts about `pid`, or None when there is no such process (or no /proc)."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    fields = raw[raw.rfind(")") + 2 :].split()
    return ProcInfo(state=fields[0], pgrp=int(fields[2]), session=int(fields[3]), start_ticks=int(fields[19]))


def start_ticks(pid: int) -> int | None:
    """The start time of `pid` (None without /proc): save it to recognise the same process later."""
    info = proc_info(pid)
    return info.start_ticks if info else None


def pid_alive(pid: int) -> bool:
    """Whether `pid` is a live (non-zombie) process."""
    if _HAS_PROC:
        info = proc_info(pid)
        return info is not None and info.state != "Z"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group `pgid`, or in the session of that id: a job is started as the
    leader of a new session, and descendants that move to process groups of their own (Ray's workers do) stay in it."""
    if not _HAS_PROC:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [pgid]
    members = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            info = proc_info(int(entry.name))
            if info is not None and pgid in (info.pgrp, info.session) and info.state != "Z":
                members.append(int(entry.name))
    return members


def is_our_group(pid: int, pgid: int, expected_start: int | None) -> bool:
    """Whether the group we started as leader `pid` (with start time `expected_start`) still has live processes.

    A live leader must have the recorded start time (else the pid was reused). Without a live leader, live
    members of group `pgid` are still ours: Linux does not reuse a pid while a process group of that id exists.
    """
    leader = proc_info(pid) if _HAS_PROC else None
    if leader is not None and leader.state != "Z":
        return expected_start is None or leader.start_ticks == expected_start
    return bool(group_members(pgid))


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    for pid in group_members(pgid):  # members that left the group but not the session
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def terminate_group(pgid: int, grace_s: float, *, hurry: Callable[[], bool] = lambda: False) -> None:
    """Stop every process in group `pgid`: SIGTERM, then SIGKILL after `grace_s` (or as soon as `hurry()`),
    and return once none is left (or 10 s after SIGKILL, for processes stuck in the kernel)."""
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while group_members(pgid):
        if time.monotonic() >= deadline or hurry():
            _signal_group(pgid, signal.SIGKILL)
            kill_deadline = time.monotonic() + 10.0
            while group_members(pgid) and time.monotonic() < kill_deadline:
                time.sleep(0.05)
            return
        time.sleep(0.05)
