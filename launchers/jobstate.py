"""Reconcile a run's status.json with what the job recorded itself (job_state.json, written by tp_job.sh or the Ray
entrypoint where the job runs) and what the launcher can see (is the wrapper process alive?), and persist the result;
and keep the local copies of the files a remote launcher syncs back (launchers/logsync.py names them)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainer_platform.runs import LOST, QUEUED, RUNNING, STATES, TERMINAL_STATES, RunDir, atomic_write


def parse_record(text: str | bytes | None) -> dict[str, Any] | None:
    """job_state.json's content as a dict; None when absent or not (yet) valid."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("state") in STATES else None


def reconcile(run_dir: RunDir, record: Mapping[str, Any] | None, alive: bool | None, **extra: Any) -> str:
    """The run's state, written into status.json (with `extra` fields): the job's own record wins once it is
    terminal; a recorded `running` whose wrapper is gone (alive False) is `lost` (not stored: it may be a host that
    cannot be reached, or a crash); no record yet means `queued`."""
    status = run_dir.read_status()
    if status.terminal:
        return status.state
    if record is None:
        state = QUEUED if alive is not False else status.state
        if state != status.state or extra:
            run_dir.write_status(state, **extra)
        return state
    fields = {k: record.get(k) for k in ("pid", "host", "started", "stop_reason") if record.get(k) is not None}
    state = str(record["state"])
    if state in TERMINAL_STATES:
        code = record.get("exit_code")
        run_dir.write_status(
            state, exit_code=None if code is None else int(code), finished=record.get("finished"), **fields, **extra
        )
        return state
    if alive is False:
        return LOST
    if status.state != RUNNING or extra:
        run_dir.write_status(RUNNING, **fields, **extra)
    return RUNNING


def store_synced(path: Path, sent: bytes, base: int = 0) -> bool:
    """Bring `path`, the local copy of a file synced back from where the job runs, up to its first `base` bytes
    (what it held before this submission) + `sent` (all the job has written so far). Only new bytes are appended,
    so readers that follow the file keep their place; a copy that differs otherwise is replaced whole; a repeated
    sync changes nothing. Call it under the run dir's `lock("sync")`. True when the file changed."""
    try:
        current = path.read_bytes()
    except FileNotFoundError:
        if not sent:
            return False
        current = b""
    want = current[:base] + sent
    if current == want:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    if want.startswith(current):
        with open(path, "ab") as f:
            f.write(want[len(current) :])
    else:
        atomic_write(path, want)
    return True
