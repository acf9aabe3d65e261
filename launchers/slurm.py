"""Submit jobs to a Slurm cluster through submitit, detached: a batch of jobs (a sweep) is one Slurm job array.

Where things are: the run dir lies on a filesystem the compute nodes share (as submitit's folder must) and holds
tp_job.sh (the job-side wrapper: it records the job's start, end and exit code in job_state.json), tp_sbatch.sh
(the batch script, for the record), train.log and the job's outputs. submitit's folder (its pickled task, the batch
script it submitted, the batch log) is `<run dir>/.slurm/` for one job and `<run root>/.slurm/<batch>/` for an
array. The task it runs is launchers.slurm_task.SlurmTask; Slurm passes the submitting environment (secrets
included) to the job, so secrets are never written anywhere.

`status` reconciles Slurm's view (squeue while the job is known there, sacct after) with job_state.json and
persists the result: Slurm decides whether the job is queued, running or over (a requeued job goes back to
queued), the wrapper's record gives the job's own exit code, and an ended job with no record (it never started,
or was killed with its node) is failed with Slurm's exit code and the batch log's tail in train.log.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from launchers.base import Handle, Launcher, LaunchError, logs_by_polling, poll_until_ended, wait_by_polling
from launchers.jobstate import parse_record
from launchers.options import SlurmOptions
from launchers.ray_cluster import RayClusterSettings, RayPorts, needs_ray_cluster, render_with_ray_cluster
from launchers.render import CANCEL_REQUESTED, JOB_STATE, SBATCH, render, render_sbatch, sbatch_parameters
from launchers.slurm_time import resolve_time_min
from launchers.torchrun_nodes import needs_torchrun_nodes, render_with_torchrun_nodes
from trainer_platform.errors import SpecError
from trainer_platform.job import VerlJob
from trainer_platform.paths import verl_ext_dir
from trainer_platform.runs import (
    CANCELLED,
    FAILED,
    LOST,
    QUEUED,
    RUNNING,
    STOPPED,
    SUCCEEDED,
    RunDir,
    atomic_write,
    utc_now,
)

# Slurm job states -> ours while the job is not over; every other state means it is over
_WAITING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "RESV_DEL_HOLD", "SUSPENDED"}
_ACTIVE = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING", "STOPPED"}
# ended states whose exit code only accounting (sacct) has
_ENDED_NEED_CODE = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "PREEMPTED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
}
_POLL_S = 0.5
# a job neither squeue nor sacct knows this long after submit is lost (accounting lags behind sbatch by moments)
_UNKNOWN_GRACE_S = 120.0
# requeues on time-outs before submitit gives up (preemptions count too when no time limit is set)
_MAX_TIMEOUTS = 5
CODE_ROOT = Path(__file__).resolve().parent.parent


class SlurmLauncher(Launcher):
    name = "slurm"
    Options: ClassVar[type[SlurmOptions]] = SlurmOptions

    def __init__(self, options: SlurmOptions | None = None) -> None:
        self.options = options

    def _opts(self) -> SlurmOptions:
        return self.options if self.options is not None else SlurmOptions(name=self.name)

    # ---- render and submit -------------------------------------------------------------------------------------

    def parameters(self, jobs: Sequence[VerlJob], job_name: str, time_min: int | None = None) -> dict[str, Any]:
        """submitit's parameters for a batch of `jobs` (an array shares one request: the largest job's); `time_min`
        the limit resolved at submit (`resolve_time`), None for a dry run of launcher.time=null."""
        o = self._opts()
        return sbatch_parameters(
            job_name=job_name,
            nnodes=max(j.nnodes for j in jobs),
            gpus_per_node=max(j.gpus_per_node for j in jobs),
            partition=o.partition,
            account=o.account,
            qos=o.qos,
            time_min=o.time_minutes if time_min is None else time_min,
            mem=o.mem,
            cpus_per_task=o.cpus_per_task,
            constraint=o.constraint,
            exclude=o.exclude,
            array_parallelism=o.array_parallelism,
            extra=o.extra_sbatch,
            setup=o.setup,
        )

    def resolve_time(self) -> int:
        """The --time of a submit: launcher.time, else the partition's limit read from Slurm (slurm_time.py)."""
        o = self._opts()
        return resolve_time_min(o.time_minutes, o.partition)

    def render(self, job: VerlJob, run_dir: RunDir, *, time_min: int | None = None) -> dict[str, str]:
        folder = str(run_dir.path.absolute() / ".slurm")
        o = self._opts()
        # launcher.setup goes into the batch script (below), before submitit's runner starts: srun steps inherit it
        if needs_ray_cluster(job):  # multi-node RL: the wrapper brings a Ray cluster up across the allocation
            settings = RayClusterSettings(ports=RayPorts(o.ray_port_base), register_timeout_s=o.ray_wait_s)
            files = render_with_ray_cluster(
                job,
                run_name=run_dir.name,
                verl_ext=str(verl_ext_dir()),
                python=_python(job),
                settings=settings,
            )
        elif needs_torchrun_nodes(job):  # multi-node SFT/DPO: one torchrun per node, rendezvous on the first
            files = render_with_torchrun_nodes(
                job,
                run_name=run_dir.name,
                verl_ext=str(verl_ext_dir()),
                python=_python(job),
                master_port=o.master_port,
            )
        else:
            files = render(
                job,
                launcher=self.name,
                run_name=run_dir.name,
                verl_ext=str(verl_ext_dir()),
                python=_python(job),
            )
        params = self.parameters([job], _job_name(run_dir.name), time_min)
        files[SBATCH] = render_sbatch(params, folder=folder, command=_runner(folder))
        return files

    def submit(self, jobs: Sequence[VerlJob], run_dirs: Sequence[RunDir]) -> list[Handle]:
        import submitit

        if len(jobs) != len(run_dirs) or not jobs:
            raise LaunchError("submit needs one run dir per job")
        for run in run_dirs:
            if run.read_status().state in (QUEUED, RUNNING) and run.load_handle() is not None:
                from launchers.base import handle_of

                if self.status(handle_of(run)) in (QUEUED, RUNNING):
                    raise LaunchError(
                        f"{run.path} is already queued or running; cancel it first (trainer-platform cancel)"
                    )
        time_min = self.resolve_time()  # before anything is written: a partition Slurm lacks is refused here
        folder = _folder(run_dirs)
        folder.mkdir(parents=True, exist_ok=True)
        for job, run in zip(jobs, run_dirs, strict=True):
            for name, text in self.render(job, run, time_min=time_min).items():
                if _read(run.path / name) != text:  # train.py wrote them when it created the run dir
                    atomic_write(run.path / name, text, executable=name.endswith(".sh"))
            for stale in (JOB_STATE, CANCEL_REQUESTED):  # a resume starts a fresh record
                (run.path / stale).unlink(missing_ok=True)
        name = _job_name(run_dirs[0].name) if len(run_dirs) == 1 else _job_name(f"sweep-{run_dirs[0].name}")
        params = self.parameters(jobs, name, time_min)
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=_MAX_TIMEOUTS, python=_runner_prefix())
        try:
            executor.update_parameters(**params)
            from launchers.slurm_task import SlurmTask

            with executor.batch():
                submitted = [executor.submit(SlurmTask(str(run.path))) for run in run_dirs]
        except (subprocess.CalledProcessError, submitit.core.utils.FailedJobError, OSError, ValueError) as e:
            raise _refused(e, run_dirs) from None
        array_script = folder / f"{submitted[0].job_id.split('_')[0]}_submission.sh"
        handles = []
        for sub, run in zip(submitted, run_dirs, strict=True):
            data = {
                "job_id": str(sub.job_id),
                "folder": str(folder),
                "submitted": utc_now(),
                "slurm_conf": os.environ.get("SLURM_CONF", ""),
            }
            handle = Handle(launcher=self.name, run_dir=str(run.path), data=data)
            run.save_handle(handle.to_dict())
            if len(run_dirs) > 1 and array_script.exists():  # the run's record holds what was submitted
                atomic_write(run.path / SBATCH, array_script.read_text(), executable=True)
            run.write_status(
                QUEUED,
                launcher=self.name,
                job_id=str(sub.job_id),
                host=None,
                pid=None,
                slurm_state="PENDING",
                cancel_requested=None,
                error=None,
            )
            handles.append(handle)
        return handles

    # ---- management from any process ---------------------------------------------------------------------------

    def status(self, handle: Handle) -> str:
        run = handle.rundir
        current = run.read_status()
        if current.terminal:
            return current.state
        job_id = str(handle.data["job_id"])
        slurm_state, slurm_code = scheduler_state(job_id, _env(handle))
        try:
            record = parse_record((run.path / JOB_STATE).read_text())
        except OSError:
            record = None
        if slurm_state in _WAITING or (not slurm_state and _recent(handle)):
            if current.state != QUEUED or current.extra.get("slurm_state") != (slurm_state or "PENDING"):
                run.write_status(QUEUED, slurm_state=slurm_state or "PENDING", pid=None)
            return QUEUED
        if slurm_state in _ACTIVE:
            fields = {k: record.get(k) for k in ("pid", "host", "started")} if record else {}
            fields = {k: v for k, v in fields.items() if v is not None}
            changed = current.state != RUNNING or current.extra.get("slurm_state") != slurm_state
            if changed or fields.get("pid", current.pid) != current.pid:  # a requeued attempt has a new pid
                run.write_status(RUNNING, slurm_state=slurm_state, **fields)
            return RUNNING
        if not slurm_state:
            if record is not None and record["state"] not in (QUEUED, RUNNING):
                # Slurm has forgotten the job (a cluster without accounting, after MinJobAge): its own record stands
                return self._ended(run, "UNKNOWN", 0, record, handle)
            return LOST
        return self._ended(run, slurm_state, slurm_code, record, handle)

    def _ended(
        self, run: RunDir, slurm_state: str, slurm_code: int, record: dict[str, Any] | None, handle: Handle
    ) -> str:
        """Persist the final state of a job Slurm has finished with."""
        done = record is not None and record["state"] in (SUCCEEDED, FAILED, CANCELLED, STOPPED)
        code = int(record["exit_code"]) if done and record and record.get("exit_code") is not None else slurm_code
        extra: dict[str, Any] = {"slurm_state": slurm_state}
        if record:
            extra.update({k: record[k] for k in ("pid", "host", "started", "stop_reason") if record.get(k) is not None})
        if slurm_state.startswith("CANCELLED") or (done and record and record["state"] == CANCELLED):
            state = CANCELLED
            code = code or 143  # cancelled before it could record an exit code: terminated
        elif done and record:
            state = str(record["state"])
            if record.get("finished"):
                extra["finished"] = record["finished"]
        else:
            # the job never recorded its end: it never started (a setup line, the interpreter), or Slurm killed it
            state, code = FAILED, code or 1
            extra["error"] = f"Slurm ended job {handle.data['job_id']} as {slurm_state} before the job recorded its end"
            self._copy_batch_log(run, handle)
        if state == SUCCEEDED and code != 0:
            state = FAILED
        run.write_status(state, exit_code=code, **extra)
        return state

    def _copy_batch_log(self, run: RunDir, handle: Handle) -> None:
        """The batch log (submitit's runner, setup errors) appended to train.log, so `logs` shows why."""
        job_id = str(handle.data["job_id"])
        path = Path(str(handle.data.get("folder", ""))) / f"{job_id}_0_log.out"  # submitit's name for it
        try:
            text = path.read_bytes()[-20000:]
        except OSError:
            return
        with run.open_log() as log:
            log.write(b"--- Slurm batch log " + str(path).encode() + b"\n" + text)

    def wait(self, handle: Handle) -> int:
        return wait_by_polling(self, handle, _POLL_S)

    def logs(self, handle: Handle, follow: bool = False) -> Iterator[str]:
        return logs_by_polling(self, handle, follow, _POLL_S)

    def cancel(self, handle: Handle) -> None:
        run = handle.rundir
        if run.read_status().terminal:
            return
        atomic_write(run.path / CANCEL_REQUESTED, utc_now() + "\n")  # the wrapper records `cancelled`
        run.write_status(cancel_requested=utc_now())
        job_id = str(handle.data["job_id"])
        res = subprocess.run(["scancel", job_id], capture_output=True, text=True, env=_env(handle), timeout=60)
        if res.returncode != 0 and "Invalid job id" not in res.stderr:
            raise LaunchError(f"scancel {job_id} failed: {res.stderr.strip()}")
        poll_until_ended(self, handle, timeout_s=60.0, poll_s=0.2)


def _refused(error: BaseException, run_dirs: Sequence[RunDir]) -> SpecError:
    """sbatch's refusal (a bad partition, account, limit) recorded in each run dir, as one clear error."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    message = next((ln for ln in reversed(lines) if "error" in ln.lower()), lines[-1] if lines else repr(error))
    message = message.removeprefix("sbatch: error: ")
    for run in run_dirs:
        run.write_status(FAILED, exit_code=None, error=f"sbatch refused the job: {message}")
    low = message.lower()
    key = next(
        (f"launcher.{k}" for k in ("partition", "account", "qos", "time", "constraint", "exclude") if k in low),
        "launcher",
    )
    return SpecError(
        key, f"sbatch refused the job: {message}", "fix the launcher option (conf/launcher/slurm.yaml or conf/local/)"
    )


def scheduler_state(job_id: str, env: dict[str, str]) -> tuple[str, int]:
    """Slurm's state of `job_id` (an array task as ARRAY_TASK) and its exit code ("", 0 when Slurm does not know
    the job, yet or any more). The controller's view first (squeue, which keeps an ended job for MinJobAge), then
    accounting (sacct), each asked once for the whole array. An array task that neither knows while its array's
    other tasks are known was cancelled while pending: Slurm drops such a task without a trace."""
    array = job_id.split("_")[0]
    known, seen = False, ""
    out = _query(["squeue", "-h", "-r", "-t", "all", "-j", array, "-o", "%i|%T"], env)
    for line in out.splitlines():
        jid, _, state = line.partition("|")
        known = True
        if jid.strip() == job_id:
            seen = state.strip()
            if seen not in _ENDED_NEED_CODE:
                return seen, 0
    out = _query(["sacct", "-n", "-P", "-X", "-j", array, "-o", "JobID,State,ExitCode"], env)
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) != 3:
            continue
        known = True
        if parts[0].strip() == job_id:
            code, _, sig = parts[2].partition(":")
            exit_code = int(code) if code.isdigit() else 1
            if exit_code == 0 and sig.isdigit() and int(sig):
                exit_code = 128 + int(sig)
            return parts[1].split()[0], exit_code
    if seen:  # ended, and not in accounting yet
        return seen, 0
    if known and "_" in job_id:
        return "CANCELLED", 0
    return "", 0


def _query(argv: list[str], env: dict[str, str]) -> str:
    try:
        res = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return res.stdout if res.returncode == 0 else ""


def _env(handle: Handle) -> dict[str, str]:
    """The environment for Slurm's clients: the cluster the job was submitted to (SLURM_CONF then) unless set."""
    env = dict(os.environ)
    conf = str(handle.data.get("slurm_conf") or "")
    if conf and "SLURM_CONF" not in env:
        env["SLURM_CONF"] = conf
    return env


def _recent(handle: Handle) -> bool:
    from trainer_platform.runs.status import parse_time

    submitted = parse_time(str(handle.data.get("submitted") or "")) if handle.data.get("submitted") else None
    if submitted is None:
        return False
    from datetime import datetime, timezone

    return (datetime.now(timezone.utc) - submitted).total_seconds() < _UNKNOWN_GRACE_S


def _python(job: VerlJob) -> str:
    """The job's interpreter: the one that made the run (a shared filesystem), or this one for a bare "python"."""
    first = job.argv[0] if job.argv else "python"
    return first if os.path.isabs(first) else sys.executable


def _runner_prefix() -> str:
    """What submitit puts before `-m submitit.core._submit FOLDER` in the batch script (see render.runner_command)."""
    return _runner("").rsplit(" -u -m submitit.core._submit", 1)[0]


def _runner(folder: str) -> str:
    from launchers.render import runner_command

    return runner_command(sys.executable, str(CODE_ROOT), folder)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _job_name(name: str) -> str:
    return "tp-" + re.sub(r"[^A-Za-z0-9_.+-]", "_", name)[:60]


def _folder(run_dirs: Sequence[RunDir]) -> Path:
    """submitit's folder: in the run dir for one job; beside the run dirs, one per batch, for an array."""
    if len(run_dirs) == 1:
        return run_dirs[0].path.absolute() / ".slurm"
    common = Path(os.path.commonpath([str(r.path.absolute()) for r in run_dirs]))
    return common / ".slurm" / f"{utc_now().replace(':', '').replace('+0000', '')}-{uuid.uuid4().hex[:8]}"
