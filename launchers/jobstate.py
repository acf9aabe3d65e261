"""Reconcile a run's status.json with what the job recorded itself (job_state.json, written by tp_job.sh where the
job runs) and what the launcher can see (is the wrapper process alive?), and persist the result."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from trainer_platform.runs import LOST, QUEUED, RUNNING, STATES, TERMINAL_STATES, RunDir


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
