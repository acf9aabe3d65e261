"""Run a job on an existing Ray cluster through the Ray Job Submission API (launcher.address, the dashboard port).

The job's working directory (runtime_env working_dir, uploaded by Ray) holds the rendered entrypoint
tp_ray_entry.sh, the platform's verl/ folder and the job's local inputs; verl's driver runs as the Ray job's
entrypoint and attaches to that cluster. The entrypoint records the job's own start and end in job_state.json in
the run dir there: launcher.remote_dir/<run> (a folder the cluster shares), else the working directory, which Ray
removes with the job. Management from any process needs only the handle (address + submission id): each status
call reads the job's log from the Job API and reconciles Ray's job status with the job's own record.

Unless the run dir there is the local run dir itself, nothing but that log comes back, so the run's files travel in
it (launchers/logsync.py): tp_logsync.py beside the job prints each new line of metrics.jsonl and diagnostics.jsonl
and each change of verl's checkpoint pointer and of job_state.json as a line marked with the submission's tag; each
status call takes those lines out of the log into the local run dir (the rest is train.log) and records where the
checkpoints are (status.json's remote_checkpoints, host:path on the cluster). Reading the whole log again, after a
restart or from another process, adds nothing twice: each local file is brought up to what it held before this
submission + all the job has sent (launchers/jobstate.py: store_synced).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from launchers.base import Handle, Launcher, LaunchError, logs_by_polling, poll_until_ended, wait_by_polling
from launchers.jobstate import parse_record, reconcile, store_synced
from launchers.logsync import APPENDED, CHECKPOINT_POINTER, JOB_STATE, Demux, Synced
from launchers.options import RayOptions
from launchers.render import RAY_ENTRY, render_ray_entry
from trainer_platform.diagnostics.monitor import stop_reason_from_output
from trainer_platform.job import VERL_EXT, VerlJob
from trainer_platform.paths import verl_ext_dir
from trainer_platform.runs import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    STOPPED,
    SUCCEEDED,
    TERMINAL_STATES,
    RunDir,
    atomic_write,
    utc_now,
)

# Ray's job states -> ours
_STATES = {"PENDING": QUEUED, "RUNNING": RUNNING, "SUCCEEDED": SUCCEEDED, "FAILED": FAILED, "STOPPED": CANCELLED}
_SHIP_DIR = ".ray_ship"
_POLL_S = 0.5


def _client(address: str) -> Any:
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise LaunchError(f"cannot reach the Ray Job API at {address}: {e}") from None


def shipped_inputs(job: VerlJob) -> dict[str, str]:
    """Each local input -> its place in the working directory Ray uploads (`inputs/<n>-<name>`, beside verl/)."""
    return {f: f"{VERL_EXT}/../inputs/{i}-{Path(f).name}" for i, f in enumerate(job.files)}


class RayLauncher(Launcher):
    name = "ray"
    Options: ClassVar[type[RayOptions]] = RayOptions

    def __init__(self, options: RayOptions | None = None) -> None:
        self.options = options

    def _opts(self) -> RayOptions:
        if self.options is None:
            raise LaunchError("the ray launcher needs its options (launcher.address) to submit")
        return self.options

    def _run_dir(self, run: RunDir) -> str | None:
        opts = self._opts()
        return None if opts.remote_dir is None else f"{opts.remote_dir.rstrip('/')}/{run.name}"

    def _syncs_back(self, run: RunDir) -> bool:
        """Whether the run's files must come back through the job's log: the run dir on the cluster is not this
        one (no shared folder, or one mounted elsewhere)."""
        there = self._run_dir(run)
        return there is None or os.path.normpath(there) != str(run.path.resolve())

    def render(self, job: VerlJob, run_dir: RunDir) -> dict[str, str]:
        job = job.resolve({}, shipped_inputs(job))
        return render_ray_entry(
            job,
            run_name=run_dir.name,
            run_dir=self._run_dir(run_dir),
            sync_back=self._syncs_back(run_dir),
            python=self._opts().python,
        )

    def submit(self, jobs: Sequence[VerlJob], run_dirs: Sequence[RunDir]) -> list[Handle]:
        opts = self._opts()
        client = _client(opts.address)
        return [self._submit_one(client, opts, job, run) for job, run in zip(jobs, run_dirs, strict=True)]

    def _submit_one(self, client: Any, opts: RayOptions, job: VerlJob, run: RunDir) -> Handle:
        size = sum(_size(Path(f)) for f in job.files)
        if size > opts.max_ship_mib * 2**20:
            raise LaunchError(
                f"{run.path}: the job's inputs are {size / 2**20:.0f} MiB, over launcher.max_ship_mib="
                f"{opts.max_ship_mib}; put them where the cluster can read them (a hub id or a shared folder)"
            )
        ship = run.path / _SHIP_DIR
        shutil.rmtree(ship, ignore_errors=True)
        shutil.copytree(verl_ext_dir(), ship / "verl", ignore=shutil.ignore_patterns("__pycache__"))
        for local, where in shipped_inputs(job).items():
            dest = ship / where.removeprefix(f"{VERL_EXT}/../")
            (shutil.copytree if Path(local).is_dir() else shutil.copy2)(local, dest)
        for name, text in self.render(job, run).items():
            atomic_write(ship / name, text, executable=True)
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", run.name)[:60]
        job_id = f"tp-{safe}-{utc_now().replace(':', '').replace('+0000', '')}-{time.monotonic_ns() % 10**6}"
        env = {**opts.env, "PYTHONUNBUFFERED": "1", "RAY_ADDRESS": "auto"}
        tag = secrets.token_hex(8)  # marks the records in this job's log (launchers/logsync.py)
        try:
            client.submit_job(
                entrypoint=f"bash {RAY_ENTRY} {tag}",
                submission_id=job_id,
                runtime_env={"working_dir": str(ship), "env_vars": env},
            )
        except (RuntimeError, ValueError, ConnectionError) as e:
            raise LaunchError(f"{opts.address}: the Ray Job API refused {run.path}: {e}") from None
        # a resumed run appends to train.log (and to what else comes back): this attempt's part starts after what
        # is there now
        sizes = {name: _local_size(run.path / name) for name in (run.log_path.name, *APPENDED)}
        data: dict[str, Any] = {
            "address": opts.address,
            "job_id": job_id,
            "run_dir_on_cluster": self._run_dir(run) or "",
            "log_offset": sizes.pop(run.log_path.name),
        }
        if self._syncs_back(run):
            data.update(sync_tag=tag, sync_base=sizes)
        handle = Handle(launcher=self.name, run_dir=str(run.path), data=data)
        run.save_handle(handle.to_dict())
        run.write_status(QUEUED, launcher=self.name, job_id=job_id, host=opts.address, pid=None, error=None)
        return handle

    def status(self, handle: Handle) -> str:
        run = handle.rundir
        if run.read_status().terminal:
            return run.read_status().state
        client = _client(str(handle.data["address"]))
        info = client.get_job_info(handle.data["job_id"])  # before the log: a job seen ended has all its log
        state = _STATES.get(str(getattr(info.status, "value", info.status)), RUNNING)
        synced = sync_back(handle, client, ended=state in TERMINAL_STATES)
        record = parse_record(synced.replaced.get(JOB_STATE))
        extra = {}
        if synced.where and CHECKPOINT_POINTER in synced.replaced:
            where = f"{synced.where.get('host')}:{synced.where.get('run_dir')}/checkpoints"
            if run.read_status().extra.get("remote_checkpoints") != where:
                extra["remote_checkpoints"] = where
        if record is not None and record["state"] in TERMINAL_STATES and state != CANCELLED:
            return reconcile(run, record, alive=None, **extra)  # the job's own record of its end
        if state == RUNNING and record is not None:
            return reconcile(run, record, alive=True, **extra)  # with the job's pid, host and start
        if state in (QUEUED, RUNNING):
            if state != run.read_status().state or extra:
                run.write_status(state, **extra)
            return state
        # ended without its own record (stopped by Ray, killed, or never started): Ray's view
        stop_reason = stop_reason_from_output(synced.output)  # the diagnostics monitor beside the job stopped it
        state = STOPPED if stop_reason is not None and state != CANCELLED else state
        code = info.driver_exit_code
        if code is None:
            code = record.get("exit_code") if record is not None and record["state"] in TERMINAL_STATES else None
        if code is None:
            code = 0 if state == SUCCEEDED else 1
        # a short job can go from PENDING to done between two polls: take its times from Ray
        times = {"finished": _iso(getattr(info, "end_time", None))}
        if not run.read_status().started:
            times["started"] = _iso(getattr(info, "start_time", None))
        run.write_status(
            state,
            exit_code=int(code),
            error=info.message if state == FAILED else None,
            stop_reason=stop_reason,
            **extra,
            **{k: v for k, v in times.items() if v},
        )
        return state

    def wait(self, handle: Handle) -> int:
        return wait_by_polling(self, handle, _POLL_S)

    def logs(self, handle: Handle, follow: bool = False) -> Iterator[str]:
        return logs_by_polling(self, handle, follow, _POLL_S)

    def cancel(self, handle: Handle) -> None:
        run = handle.rundir
        if run.read_status().terminal:
            return
        run.write_status(cancel_requested=utc_now())
        _client(str(handle.data["address"])).stop_job(handle.data["job_id"])
        poll_until_ended(self, handle, timeout_s=30.0, poll_s=_POLL_S)


def sync_back(handle: Handle, client: Any, ended: bool) -> Synced:
    """Read the job's log from the Job API; bring the local train.log and the files the job sent back up to it."""
    run, data = handle.rundir, handle.data
    output = job_output(client.get_job_logs(data["job_id"]), str(data["job_id"]))
    tag = data.get("sync_tag")
    synced = Demux(None if tag is None else str(tag)).feed(output, final=ended)
    bases = data.get("sync_base") or {}
    with run.lock("sync"):
        store_synced(run.log_path, synced.output.encode(), int(data.get("log_offset", 0)))
        for name, text in synced.appended.items():
            store_synced(run.path / name, text.encode(), int(bases.get(name, 0)))
        pointer = synced.replaced.get(CHECKPOINT_POINTER)
        if pointer is not None:
            store_synced(run.path / CHECKPOINT_POINTER, pointer.encode())
    return synced


def _local_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _iso(ms: int | None) -> str | None:
    """Ray's millisecond timestamps as our UTC ISO strings."""
    if not ms:
        return None
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ms / 1000, timezone.utc).replace(microsecond=0).isoformat()


def job_output(logs: str, job_id: str) -> str:
    """The job's own output: Ray's job log without the lines Ray writes before the entrypoint starts."""
    marker = f"Running entrypoint for job {job_id}:"
    at = logs.find(marker)
    if at < 0:
        return "" if "Runtime env" in logs.split("\n", 1)[0] else logs
    newline = logs.find("\n", at)
    return "" if newline < 0 else logs[newline + 1 :]


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0
