"""Run a job as a subprocess on this machine, in its own process group, with output teed to the console and train.log.

The process that submits owns the job: a reader thread copies its output and writes the final status when it ends.
`wait` turns SIGINT/SIGTERM into stopping the whole process tree (status `cancelled`, exit code 130/143), one that
came between submit and wait too (launchers/signal_hold.py). Any other process can manage the job from the run dir
alone: `status` checks the pid is still the one started, `cancel` stops its process group (on the same host).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from launchers import proctree
from launchers.base import Handle, Launcher, LaunchError
from launchers.gpu_pool import GpuPool, default_max_parallel, machine_gpus
from launchers.local_batch import LocalBatch
from launchers.options import LocalOptions
from launchers.render import MONITOR_CONFIG
from launchers.signal_hold import SignalHold
from trainer_platform.diagnostics.monitor import STOP_FILE, read_stop_reason
from trainer_platform.job import VerlJob
from trainer_platform.paths import local_placeholders
from trainer_platform.runs import (
    CANCELLED,
    FAILED,
    LOST,
    QUEUED,
    RUNNING,
    STOPPED,
    SUCCEEDED,
    RunDir,
    RunDirError,
    utc_now,
)
from trainer_platform.runs.status import exit_code_from_returncode

# How long output is still read after the main process exits (leftover processes may hold the pipe open).
_DRAIN_S = 2.0
_POLL_S = 0.1


def _key(run_dir: RunDir | str) -> str:
    return str((run_dir.path if isinstance(run_dir, RunDir) else Path(run_dir)).absolute())


@dataclass
class _Job:
    """A job this process started: only here can output be read and the final status be known exactly.

    Its reader thread copies the output line by line to train.log and the console, then writes the final status.
    """

    popen: subprocess.Popen[bytes]
    run_dir: RunDir
    log: BinaryIO
    console: TextIO | None
    grace_s: float
    # exit code to report when this process stopped the job because it got a signal (130 for SIGINT, 143 SIGTERM)
    cancel_code: int | None = None
    # the diagnostics monitor beside the job (trainer_platform.diagnostics.monitor), when the job has diagnostics
    monitor: subprocess.Popen[bytes] | None = None
    # the job's scratch folders (VerlJob.scratch_dirs), removed once its processes are gone
    scratch_dirs: tuple[str, ...] = ()
    pump: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.pump = threading.Thread(target=self._run, name=f"local-launcher-{self.popen.pid}", daemon=True)

    def _emit(self, line: bytes) -> None:
        self.log.write(line)
        if self.console is not None:
            try:
                self.console.write(line.decode("utf-8", errors="replace"))
                self.console.flush()
            except (OSError, ValueError):
                self.console = None  # the console went away: keep logging to the file

    def _run(self) -> None:
        popen = self.popen
        assert popen.stdout is not None
        fd = popen.stdout.fileno()
        buf = b""
        try:
            exited_at: float | None = None
            while True:
                if popen.poll() is not None:
                    exited_at = exited_at or time.monotonic()
                    if time.monotonic() - exited_at > _DRAIN_S:
                        break
                ready, _, _ = select.select([fd], [], [], _POLL_S)
                if not ready:
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                *lines, buf = (buf + chunk).split(b"\n")
                for line in lines:
                    self._emit(line + b"\n")
            if buf:
                self._emit(buf)
            popen.wait()
            if proctree.group_members(popen.pid):  # leftovers of the job: the run's tree ends with the run
                proctree.terminate_group(popen.pid, self.grace_s)
            for folder in self.scratch_dirs:
                shutil.rmtree(folder, ignore_errors=True)
        finally:
            popen.stdout.close()
            self.log.close()
            self._finalize()

    def _finalize(self) -> None:
        code = exit_code_from_returncode(self.popen.wait())
        if self.monitor is not None:  # on SIGTERM it reads the metrics a last time and exits (within ~0.2 s)
            self.monitor.terminate()
            try:
                self.monitor.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.monitor.kill()
                self.monitor.wait()
        status = self.run_dir.read_status()
        stop_reason = read_stop_reason(self.run_dir.path)
        if stop_reason is not None:
            self.run_dir.write_status(STOPPED, exit_code=code, stop_reason=stop_reason)
        elif self.cancel_code is not None or status.extra.get("cancel_requested") or status.state == CANCELLED:
            self.run_dir.write_status(CANCELLED, exit_code=code if self.cancel_code is None else self.cancel_code)
        else:
            self.run_dir.write_status(SUCCEEDED if code == 0 else FAILED, exit_code=code)
        _JOBS.pop(_key(self.run_dir), None)  # final status written: a later wait() reads it from there


# run dir path -> job, process-wide: any LocalLauncher instance in this process can wait on a job it started.
_JOBS: dict[str, _Job] = {}
# run dir path -> the batch it was submitted in (its jobs wait there until their GPUs are free)
_BATCHES: dict[str, LocalBatch] = {}
# submits under way in this process (their jobs may be starting)
_SUBMITTING: list[bool] = []


def _following() -> bool:
    """Whether this process has local jobs to follow: being submitted, running, or queued in a batch."""
    return (
        bool(_SUBMITTING)
        or any(job.pump.is_alive() for job in list(_JOBS.values()))
        or any(batch.pending() for batch in list(_BATCHES.values()))
    )


# SIGINT/SIGTERM from the first submit until nothing is left to follow: `wait` acts on them
_HOLD = SignalHold(_following)


class LocalLauncher(Launcher):
    """Runs the job on this machine. `grace_s`: seconds between SIGTERM and SIGKILL when stopping it; `echo`:
    copy the output to `console` (default: sys.stdout at submit time) besides train.log. By default the output goes
    to train.log only (echoed when a `console` is given): the console shows a run from its run dir
    (trainer_platform.console), and `verbose=true` shows train.log live there."""

    name = "local"
    Options = LocalOptions

    def __init__(
        self,
        grace_s: float | None = None,
        echo: bool | None = None,
        console: TextIO | None = None,
        options: LocalOptions | None = None,
    ) -> None:
        self.options = options
        self.grace_s = grace_s if grace_s is not None else (options.grace_s if options else 10.0)
        self.echo = console is not None if echo is None else echo
        self.console = console

    def submit(self, jobs: Sequence[VerlJob], run_dirs: Sequence[RunDir]) -> list[Handle]:
        """Start the jobs as one batch: each when its GPUs are free and fewer than launcher.max_parallel run
        (the others wait `queued`), with its own disjoint CUDA_VISIBLE_DEVICES (launchers/local_batch.py)."""
        items = [(job.resolve(local_placeholders(run.path)), run) for job, run in zip(jobs, run_dirs, strict=True)]
        for _, run in items:
            self._refuse_running(run)
        opts = self.options
        gpus = machine_gpus(None if opts is None or opts.gpus is None else list(opts.gpus))
        if not gpus:  # no GPU seen here: nothing to split, jobs run as they are (CPU jobs, or CUDA's own view)
            items = [(replace(job, gpus_per_node=0), run) for job, run in items]
        limit = opts.max_parallel if opts is not None and opts.max_parallel is not None else None
        if limit is None:
            limit = default_max_parallel(gpus, [job.gpus_per_node for job, _ in items])
        batch = LocalBatch(items, GpuPool(gpus, limit), self._start, self._ended)
        for _, run in items:
            _BATCHES[_key(run)] = batch
        # from before the first job starts: a signal that lands before wait() is kept for it (not a dead train.py
        # with its jobs running on, unrecorded)
        _HOLD.hold()
        _SUBMITTING.append(True)
        try:
            return batch.submit()
        except BaseException:
            _HOLD.release(force=True)
            raise
        finally:
            _SUBMITTING.pop()

    def _refuse_running(self, run_dir: RunDir) -> None:
        if run_dir.read_status().state == RUNNING:
            old = run_dir.load_handle()
            if old is None or old.get("launcher") != self.name or self.status(_handle(old, run_dir)) == RUNNING:
                raise RunDirError(f"{run_dir.path} is already running; cancel it first (trainer-platform cancel)")

    @staticmethod
    def _ended(run_dir: RunDir) -> bool:
        job = _JOBS.get(_key(run_dir))
        return job is None or not job.pump.is_alive()

    def _start(self, job: VerlJob, run_dir: RunDir, extra_env: dict[str, str]) -> Handle:
        argv = [sys.executable if job.argv[0] == "python" else job.argv[0], *job.argv[1:]]
        # WANDB_SERVICE: a W&B service of this process's caller, not the job's (tp_job.sh says why)
        inherited = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
        env = {**inherited, "PYTHONUNBUFFERED": "1", **job.env, **extra_env}
        (run_dir.path / STOP_FILE).unlink(missing_ok=True)  # an earlier attempt's
        log = run_dir.open_log()
        try:
            popen = subprocess.Popen(
                argv,
                cwd=run_dir.path,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as e:
            log.close()
            run_dir.write_status(FAILED, exit_code=127, error=f"cannot start {argv[0]}: {e}")
            raise LaunchError(f"{run_dir.path}: cannot start {argv[0]!r}: {e}") from e
        host = socket.gethostname()
        data = {"pid": popen.pid, "pgid": popen.pid, "host": host, "start_ticks": proctree.start_ticks(popen.pid)}
        # the process whose reader thread writes the final status (see status(): gone but not yet recorded)
        data.update(submitter_pid=os.getpid(), submitter_ticks=proctree.start_ticks(os.getpid()))
        handle = Handle(launcher=self.name, run_dir=_key(run_dir), data=data)
        run_dir.save_handle(handle.to_dict())
        run_dir.write_status(RUNNING, pid=popen.pid, host=host, launcher=self.name, cancel_requested=None, error=None)
        console = (sys.stdout if self.console is None else self.console) if self.echo else None
        entry = _Job(
            popen=popen, run_dir=run_dir, log=log, console=console, grace_s=self.grace_s, scratch_dirs=job.scratch_dirs
        )
        entry.monitor = _start_monitor(job, run_dir, popen.pid)
        _JOBS[_key(run_dir)] = entry
        entry.pump.start()
        return handle

    # ---- wait ----------------------------------------------------------------------------------------------------

    def wait(self, handle: Handle) -> int:
        key = _key(handle.run_dir)
        batch = _BATCHES.get(key)
        _HOLD.hold()  # held since submit when this process submitted it
        signals = _HOLD.received
        try:
            while batch is not None and batch.waiting(handle.rundir):  # queued: it starts when others end
                if signals:
                    self._stop_batch(batch, 128 + signals[0])
                time.sleep(_POLL_S)
            job = _JOBS.get(key)
            if job is None:  # started by another process, or already ended: follow its status
                while self.status(handle) in (RUNNING, QUEUED):
                    time.sleep(0.5)
                code = handle.rundir.read_status().exit_code
                return 1 if code is None else code
            while job.pump.is_alive():
                job.pump.join(_POLL_S)
                if signals and job.cancel_code is None:
                    job.cancel_code = 128 + signals[0]
                    if batch is not None:
                        self._stop_batch(batch, job.cancel_code, but=job)
                    # a second Ctrl-C skips the grace period
                    proctree.terminate_group(job.popen.pid, self.grace_s, hurry=lambda: len(signals) > 1)
        finally:
            _HOLD.release()  # once nothing is left to follow
        _JOBS.pop(_key(job.run_dir), None)
        if job.cancel_code is not None:
            return job.cancel_code
        return exit_code_from_returncode(job.popen.wait())

    def _stop_batch(self, batch: LocalBatch, code: int, but: _Job | None = None) -> None:
        """A signal while following a batch stops all of it: queued jobs never start, running ones are stopped."""
        batch.cancel_all()
        for item in batch.items:
            other = _JOBS.get(_key(item.run))
            if other is not None and other is not but and other.cancel_code is None and other.pump.is_alive():
                other.cancel_code = code
                threading.Thread(
                    target=proctree.terminate_group, args=(other.popen.pid, self.grace_s), daemon=True
                ).start()

    # ---- management from any process -----------------------------------------------------------------------------

    @staticmethod
    def _is_ours(handle: Handle) -> bool:
        data = handle.data
        if data.get("host") != socket.gethostname():
            return False
        return proctree.is_our_group(int(data["pid"]), int(data["pgid"]), data.get("start_ticks"))

    def status(self, handle: Handle) -> str:
        run_dir = handle.rundir
        state = run_dir.read_status().state
        if state == QUEUED and handle.data.get("queued"):
            return QUEUED if _submitter_alive(handle) or _BATCHES.get(_key(run_dir)) else LOST
        if state != RUNNING:
            return state
        if "pid" not in handle.data:  # the handle from submit of a job queued then: read the current one
            handle = _handle(run_dir.load_handle() or {}, run_dir)
        job = _JOBS.get(_key(run_dir))
        if job is not None and job.pump.is_alive():
            return RUNNING
        if handle.data.get("host") != socket.gethostname():
            return RUNNING  # another host's process: its status file is all we can know
        if self._is_ours(handle):
            return RUNNING
        # the process is gone; it may have written its final status meanwhile
        state = run_dir.read_status().state
        if state != RUNNING:
            return state
        # its submitter is still draining output / waiting for the monitor before it records the end: not lost yet
        return RUNNING if "submitter_pid" in handle.data and _submitter_alive(handle) else LOST

    def logs(self, handle: Handle, follow: bool = False) -> Iterator[str]:
        return handle.rundir.iter_log(follow=follow, done=lambda: self.status(handle) != RUNNING)

    def cancel(self, handle: Handle) -> None:
        run_dir = handle.rundir
        status = run_dir.read_status()
        if status.terminal:
            return
        host = handle.data.get("host")
        if host != socket.gethostname():
            raise LaunchError(f"{run_dir.path} runs on host {host!r}; cancel it from there")
        run_dir.write_status(cancel_requested=utc_now())
        if "pid" not in handle.data:
            current = run_dir.load_handle() or {}
            if "pid" not in current.get("data", {}):  # queued: it never starts (its batch sees cancel_requested)
                run_dir.write_status(CANCELLED)
                return
            handle = _handle(current, run_dir)
        if self._is_ours(handle):
            proctree.terminate_group(int(handle.data["pgid"]), self.grace_s)
        job = _JOBS.get(_key(run_dir))
        if job is not None:  # this process reads its output: let it write the final status
            job.pump.join()
            return
        # the submitting process (if still alive) may finalize too; both write `cancelled`
        deadline = time.monotonic() + 2.0
        while not run_dir.read_status().terminal and time.monotonic() < deadline:
            time.sleep(_POLL_S)
        if not run_dir.read_status().terminal:
            run_dir.write_status(CANCELLED)


def _start_monitor(job: VerlJob, run_dir: RunDir, pgid: int) -> subprocess.Popen[bytes] | None:
    """Start the diagnostics monitor beside the job (its own session, output into train.log); None without
    diagnostics. A stop rule signals the job's process group; `_finalize` then records `stopped`."""
    if job.diagnostics is None:
        return None
    config = run_dir.path / MONITOR_CONFIG
    run_dir.update_files({MONITOR_CONFIG: json.dumps(dict(job.diagnostics), indent=2) + "\n"})
    argv = [sys.executable, "-m", "trainer_platform.diagnostics.monitor", str(run_dir.path)]
    argv += ["--config", str(config), "--pid", str(pgid), "--group"]
    root = str(Path(__file__).resolve().parent.parent)  # where trainer_platform is importable from
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    with run_dir.open_log() as log:
        return subprocess.Popen(
            argv,
            cwd=run_dir.path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _submitter_alive(handle: Handle) -> bool:
    """Whether the process that queued this job (and would start it) still runs."""
    data = handle.data
    if data.get("host") != socket.gethostname() or "submitter_pid" not in data:
        return True  # another host: its status file is all we can know
    pid = int(data["submitter_pid"])
    return proctree.start_ticks(pid) == data.get("submitter_ticks") and proctree.start_ticks(pid) is not None


def _handle(data: dict[str, Any], run_dir: RunDir) -> Handle:
    handle = Handle.from_dict(data)
    return Handle(launcher=handle.launcher, run_dir=_key(run_dir), data=handle.data)
