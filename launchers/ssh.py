"""Run a job on a GPU server over SSH (paramiko), detached: it survives the connection dropping and the
submitting process exiting.

Where it runs: `<remote_dir>/runs/<run name>-<hash>/` holds tp_job.sh (the rendered wrapper: it records the job's
pid, state, exit code and times in job_state.json there), train.log and the job's outputs. The code the remote
lacks (the platform's verl/ folder, once per content hash, under `<remote_dir>/code/`) and the job's local inputs
(model, data, reward file, under `<remote_dir>/inputs/`) are shipped by SFTP: it rides on the SSH connection
paramiko already holds (same auth, password included, no rsync needed on either side), and files already there
with the same size are skipped. The remote environment (verl installed) comes from launcher.setup lines.

status/logs/cancel reconnect from any process with the handle alone; each status call syncs train.log,
metrics.jsonl and the last checkpoint's step back into the local run dir (status.json's remote_checkpoints says
where the checkpoints are), so `status`, `watch` and reports work locally.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import paramiko

from launchers import sshconn
from launchers.base import Handle, Launcher, LaunchError, logs_by_polling, poll_until_ended, wait_by_polling
from launchers.jobstate import parse_record, reconcile, store_synced
from launchers.logsync import APPENDED, CHECKPOINT_POINTER
from launchers.options import SshOptions
from launchers.render import JOB_STATE, WRAPPER, render
from trainer_platform.job import RUN_DIR, VerlJob
from trainer_platform.paths import verl_ext_dir
from trainer_platform.runs import FAILED, QUEUED, RUNNING, RunDir

# environment variables copied from the submitting environment to the job (through the wrapper's stdin)
FORWARD_ENV = ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
_POLL_S = 1.0
_clients: dict[sshconn.Target, paramiko.SSHClient] = {}


def _digest(*parts: str) -> str:
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()[:10]


def code_hash(folder: Path) -> str:
    """Content hash of the platform's verl/ folder: it is shipped once per version."""
    h = hashlib.sha1()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def remote_run_name(run_dir: RunDir) -> str:
    """The run's folder name on the remote host: plain characters only, unique per local run dir."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", run_dir.name).lstrip(".-") or "run"
    return f"{safe[:80]}-{_digest(str(run_dir.path))}"


def shipped_paths(job: VerlJob) -> dict[str, str]:
    """Each local input of the job -> where it lies on the remote host, relative to the job's run dir."""
    return {f: f"{RUN_DIR}/../../inputs/{_digest(f)}/{Path(f).name}" for f in job.files}


class SshLauncher(Launcher):
    name = "ssh"
    Options: ClassVar[type[SshOptions]] = SshOptions

    def __init__(self, options: SshOptions | None = None, forward_env: Sequence[str] = FORWARD_ENV) -> None:
        self.options = options
        self.forward_env = tuple(forward_env)

    # ---- render and submit -------------------------------------------------------------------------------------

    def render(self, job: VerlJob, run_dir: RunDir) -> dict[str, str]:
        opts = self._opts()
        return render(
            job.resolve({}, shipped_paths(job)),
            launcher=self.name,
            run_name=run_dir.name,
            verl_ext=f"../../code/verl-{code_hash(verl_ext_dir())}",
            setup=opts.setup,
            python=opts.python,
        )

    def _opts(self) -> SshOptions:
        if self.options is None:
            raise LaunchError("the ssh launcher needs its options (launcher.host, ...) to submit")
        return self.options

    def submit(self, jobs: Sequence[VerlJob], run_dirs: Sequence[RunDir]) -> list[Handle]:
        opts = self._opts()
        target = sshconn.resolve_target(opts.host, opts.port, opts.user, opts.key_file)
        client = _client(target, trust_new_host=opts.trust_new_host, timeout_s=opts.connect_timeout_s)
        sftp = client.open_sftp()
        try:
            root = _remote_root(sftp, opts.remote_dir)
            sshconn.put_tree(sftp, verl_ext_dir(), f"{root}/code/verl-{code_hash(verl_ext_dir())}")
            pairs = zip(jobs, run_dirs, strict=True)
            handles = [self._submit_one(client, sftp, target, root, job, run) for job, run in pairs]
        finally:
            sftp.close()
        return handles

    def _submit_one(
        self,
        client: paramiko.SSHClient,
        sftp: paramiko.SFTPClient,
        target: sshconn.Target,
        root: str,
        job: VerlJob,
        run: RunDir,
    ) -> Handle:
        busy = run.read_status().state in (RUNNING, QUEUED) and run.load_handle() is not None
        if busy and self.status(handle_from(run)) in (RUNNING, QUEUED):
            raise LaunchError(f"{run.path} is already running; cancel it first (trainer-platform cancel)")
        remote = f"{root}/runs/{remote_run_name(run)}"
        for local, where in shipped_paths(job).items():
            sshconn.put_tree(sftp, Path(local), where.replace(RUN_DIR, remote))
        files = self.render(job, run)
        sshconn.mkdirs(sftp, remote)
        for name, text in files.items():
            with sftp.open(f"{remote}/{name}", "w") as f:
                f.write(text)
        # a resume starts a fresh record; the local run dir archived the earlier attempt's metrics already
        for stale in (JOB_STATE, "cancel_requested", "metrics.jsonl"):
            with contextlib.suppress(FileNotFoundError):
                sftp.remove(f"{remote}/{stale}")
        data: dict[str, Any] = {**asdict(target), "remote_run": remote}
        handle = Handle(launcher=self.name, run_dir=str(run.path), data=data)
        run.save_handle(handle.to_dict())
        run.write_status(
            QUEUED, launcher=self.name, host=target.host, pid=None, remote_run=remote, cancel_requested=None, error=None
        )
        stdin, stdout, _ = client.exec_command(shlex.join(["setsid", "-f", "bash", f"{remote}/{WRAPPER}"]))
        secrets = [f"{k}={os.environ[k]}" for k in self.forward_env if "\n" not in os.environ.get(k, "\n")]
        stdin.write("".join(line + "\n" for line in [*secrets, "--"]))
        stdin.channel.shutdown_write()
        if stdout.channel.recv_exit_status() != 0:
            run.write_status(FAILED, exit_code=127, error=f"could not start {remote}/{WRAPPER} on {target.label}")
            raise LaunchError(f"{target.label}: could not start {remote}/{WRAPPER}")
        deadline = time.monotonic() + 10.0  # the wrapper records `running` within moments
        while self.status(handle) == QUEUED and time.monotonic() < deadline:
            time.sleep(0.1)
        return handle

    # ---- management from any process ---------------------------------------------------------------------------

    def status(self, handle: Handle) -> str:
        run = handle.rundir
        if run.read_status().terminal:
            return run.read_status().state
        target, remote = _target(handle), str(handle.data["remote_run"])
        client = _client(target)
        code, _, _ = sshconn.run(client, ["bash", f"{remote}/{WRAPPER}", "--alive"])
        with client.open_sftp() as sftp:
            record = parse_record(sshconn.read_file(sftp, f"{remote}/{JOB_STATE}"))  # after the liveness check
            _sync_back(sftp, remote, run)
            ckpt = sshconn.read_file(sftp, f"{remote}/{CHECKPOINT_POINTER}")
        extra = {"remote_checkpoints": f"{target.host}:{remote}/checkpoints"} if ckpt else {}
        alive = code == 0 if record is not None else None
        return reconcile(run, record, alive, **extra)

    def wait(self, handle: Handle) -> int:
        return wait_by_polling(self, handle, _POLL_S)

    def logs(self, handle: Handle, follow: bool = False) -> Iterator[str]:
        return logs_by_polling(self, handle, follow, _POLL_S)

    def cancel(self, handle: Handle) -> None:
        run = handle.rundir
        if run.read_status().terminal:
            return
        remote = str(handle.data["remote_run"])
        sshconn.run(_client(_target(handle)), ["bash", f"{remote}/{WRAPPER}", "--cancel"])
        poll_until_ended(self, handle, timeout_s=30.0, poll_s=0.2)


def handle_from(run: RunDir) -> Handle:
    from launchers.base import handle_of

    return handle_of(run)


def _target(handle: Handle) -> sshconn.Target:
    d = handle.data
    return sshconn.Target(
        host=d["host"],
        port=int(d["port"]),
        user=d["user"],
        key_file=d.get("key_file"),
        known_hosts=d.get("known_hosts", "~/.ssh/known_hosts"),
    )


def _client(target: sshconn.Target, **connect_kw: Any) -> paramiko.SSHClient:
    """One connection per target and process, reopened when it dropped."""
    client = _clients.get(target)
    transport = client.get_transport() if client is not None else None
    if client is None or transport is None or not transport.is_active():
        client = sshconn.connect(target, **connect_kw)
        _clients[target] = client
    return client


def drop_connections() -> None:
    """Close this process's SSH connections (the jobs keep running)."""
    for client in _clients.values():
        client.close()
    _clients.clear()


def _remote_root(sftp: paramiko.SFTPClient, remote_dir: str) -> str:
    home = sftp.normalize(".")
    root = home + remote_dir[1:] if remote_dir.startswith("~") else remote_dir
    sshconn.mkdirs(sftp, root)
    return root.rstrip("/")


def _sync_back(sftp: paramiko.SFTPClient, remote: str, run: RunDir) -> None:
    """Append the remote train.log's new bytes to the local one; copy metrics.jsonl, diagnostics.jsonl (the
    diagnostics monitor's anomalies) and the checkpoint pointer."""
    with run.lock("sync"):
        size = run.log_path.stat().st_size if run.log_path.exists() else 0
        new = sshconn.read_file(sftp, f"{remote}/train.log", size)
        if new:
            with run.open_log() as log:
                log.write(new)
        for name in (*APPENDED, CHECKPOINT_POINTER):
            remote_bytes = sshconn.read_file(sftp, f"{remote}/{name}")
            if remote_bytes is not None:
                store_synced(run.path / name, remote_bytes)
