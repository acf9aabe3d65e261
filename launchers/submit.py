"""Submit a batch of jobs and, with launcher.wait=true, follow them to the end: what train.py does after the run
dirs are written. Detached (the remote launchers' default): print where each run is and how to follow it, return."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from launchers.base import Handle, Launcher
from trainer_platform.job import VerlJob
from trainer_platform.runs import RunDir


def _job_id(handle: Handle) -> str:
    data = handle.data
    for key in ("job_id", "remote_run", "pid"):
        if key in data:
            where = f"{data['user']}@{data['host']}:" if key == "remote_run" else ""
            return f"{key.replace('_', ' ')} {where}{data[key]}"
    return "-"


def submit_and_follow(
    launcher: Launcher, jobs: Sequence[VerlJob], run_dirs: Sequence[RunDir], *, verbose: bool = False
) -> int:
    """`submit_and_follow_each`, as one exit code: the first failing job's (0 when all succeeded or were
    submitted detached)."""
    codes = submit_and_follow_each(launcher, jobs, run_dirs, verbose=verbose)
    return next((c for c in codes if c != 0), 0)


def submit_and_follow_each(
    launcher: Launcher, jobs: Sequence[VerlJob], run_dirs: Sequence[RunDir], *, verbose: bool = False
) -> list[int]:
    """Submit `jobs` as one batch; with launcher.wait, show each run with the console (from its run dir, which
    the launcher's wait keeps in sync) until it ends, then its summary. Returns each job's exit code (0 for a job
    submitted detached)."""
    options = getattr(launcher, "options", None)
    wait = True if options is None else bool(options.wait)
    if wait:  # before the submit: from it on, a Ctrl-C must reach the cancelling below (a detached one shows none)
        from trainer_platform.console import show_while, summary_text
    handles = launcher.submit(jobs, run_dirs)
    if not wait:
        for handle, run in zip(handles, run_dirs, strict=True):
            print(f"trainer_platform: submitted ({_job_id(handle)}), {run.read_status().state}", flush=True)
            print(f"  follow: trainer-platform logs -f {run.path}   status: trainer-platform status {run.path}")
            print(f"run dir: {run.path}", flush=True)
        return [0] * len(handles)
    codes = []
    try:  # from the first id printed on: a Ctrl-C that follows the printing itself must still cancel the batch
        if any("job_id" in h.data for h in handles):  # a scheduler's ids, known before anything else is shown
            for handle, run in zip(handles, run_dirs, strict=True):
                print(f"trainer_platform: submitted ({_job_id(handle)}) {run.path}", flush=True)
        for handle, run in zip(handles, run_dirs, strict=True):
            code = show_while(run, functools.partial(launcher.wait, handle), verbose=verbose)
            print(summary_text(run), flush=True)  # its last line: run dir: PATH
            codes.append(code)
    except KeyboardInterrupt:
        _cancel_unfinished(launcher, handles, run_dirs)
        raise
    return codes


def _cancel_unfinished(launcher: Launcher, handles: Sequence[Handle], run_dirs: Sequence[RunDir]) -> None:
    """Ctrl-C while following: stop every job of the batch that has not ended (nothing is left running unseen),
    saying which. A second Ctrl-C stops the cancelling; what is left is printed so it can be cancelled by hand."""
    pending = [(h, r) for h, r in zip(handles, run_dirs, strict=True) if not r.read_status().terminal]
    try:
        while pending:
            handle, run = pending[0]
            print(f"trainer_platform: interrupted; cancelling {_job_id(handle)} {run.path}", flush=True)
            launcher.cancel(handle)
            pending.pop(0)
    finally:
        for handle, run in pending:
            print(
                f"trainer_platform: not cancelled: {_job_id(handle)} (trainer-platform cancel {run.path})", flush=True
            )
