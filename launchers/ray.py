"""Run a job on an existing Ray cluster through the Ray Job Submission API (launcher.address, the dashboard port).

The job's working directory (runtime_env working_dir, uploaded by Ray) holds the rendered entrypoint
tp_ray_entry.sh, the platform's verl/ folder and the job's local inputs; verl's driver runs as the Ray job's
entrypoint and attaches to that cluster. The Ray job is the job-side record: status and `driver_exit_code` come from
the cluster and are reconciled into status.json; its logs are copied into train.log. Management from any process
needs only the handle (address + submission id).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from launchers.base import Handle, Launcher, LaunchError
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

    def render(self, job: VerlJob, run_dir: RunDir) -> dict[str, str]:
        job = job.resolve({}, shipped_inputs(job))
        return render_ray_entry(job, run_name=run_dir.name, run_dir=self._run_dir(run_dir), python=self._opts().python)

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
        try:
            client.submit_job(
                entrypoint=f"bash {RAY_ENTRY}",
                submission_id=job_id,
                runtime_env={"working_dir": str(ship), "env_vars": env},
            )
        except (RuntimeError, ValueError, ConnectionError) as e:
            raise LaunchError(f"{opts.address}: the Ray Job API refused {run.path}: {e}") from None
        # a resumed run appends to train.log: this attempt's output starts after what is there now
        offset = run.log_path.stat().st_size if run.log_path.exists() else 0
        data = {
            "address": opts.address,
            "job_id": job_id,
            "run_dir_on_cluster": self._run_dir(run) or "",
            "log_offset": offset,
        }
        handle = Handle(launcher=self.name, run_dir=str(run.path), data=data)
        run.save_handle(handle.to_dict())
        run.write_status(QUEUED, launcher=self.name, job_id=job_id, host=opts.address, pid=None, error=None)
        return handle

    def status(self, handle: Handle) -> str:
        run = handle.rundir
        if run.read_status().terminal:
            return run.read_status().state
        client = _client(str(handle.data["address"]))
        info = client.get_job_info(handle.data["job_id"])
        state = _STATES.get(str(getattr(info.status, "value", info.status)), RUNNING)
        before = run.log_path.read_bytes()[: int(handle.data.get("log_offset", 0))] if run.log_path.exists() else b""
        output = job_output(client.get_job_logs(handle.data["job_id"]), handle.data["job_id"])
        atomic_write(run.log_path, before + output.encode())
        if state == QUEUED and run.read_status().state != QUEUED:
            run.write_status(QUEUED)
        elif state == RUNNING and run.read_status().state != RUNNING:
            run.write_status(RUNNING)
        elif state in (SUCCEEDED, FAILED, CANCELLED):
            stop_reason = stop_reason_from_output(output)  # the diagnostics monitor beside the job stopped it
            state = STOPPED if stop_reason is not None else state
            code = info.driver_exit_code
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
                **{k: v for k, v in times.items() if v},
            )
        return state

    def wait(self, handle: Handle) -> int:
        while self.status(handle) in (QUEUED, RUNNING):
            time.sleep(_POLL_S)
        code = handle.rundir.read_status().exit_code
        return 1 if code is None else code

    def logs(self, handle: Handle, follow: bool = False) -> Iterator[str]:
        if not handle.rundir.read_status().terminal:
            self.status(handle)
        return handle.rundir.iter_log(
            follow=follow, done=lambda: self.status(handle) not in (QUEUED, RUNNING), poll_s=_POLL_S
        )

    def cancel(self, handle: Handle) -> None:
        run = handle.rundir
        if run.read_status().terminal:
            return
        run.write_status(cancel_requested=utc_now())
        _client(str(handle.data["address"])).stop_job(handle.data["job_id"])
        deadline = time.monotonic() + 30.0
        while self.status(handle) in (QUEUED, RUNNING) and time.monotonic() < deadline:
            time.sleep(_POLL_S)


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
