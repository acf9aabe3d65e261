"""The run directory: the one place a run's files live, and the only writer of them.

Layout of `<root>/<name>/`: spec.yaml, launch.sh, job.json (written at create by the caller), record.json and git.diff
(provenance), status.json (lifecycle), handle.json (the launcher's handle), train.log (the job's output),
metrics.jsonl (verl's file logger), checkpoints/ (verl's checkpoints), wandb/ and wandb_id.txt (W&B).

Every write replaces the file atomically (temp file in the same folder, fsync, rename), so a reader on any host sees
either the old or the new content. A run dir appears under its root in one rename, complete: allocate() stages it in
`<root>/.staging/` and claims its final name with an exclusive claim file there, so concurrent sweeps never share a
name and a crash before create() leaves nothing that looks like a run. create_all() creates a batch (a sweep) at
about the cost of one (runs/create.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import socket
import string
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from trainer_platform.job import VerlJob
from trainer_platform.runs import metrics
from trainer_platform.runs.atomic import atomic_write, json_text
from trainer_platform.runs.create import (  # noqa: F401 - DIFF_FILE: the run dir's file names live here too
    DIFF_FILE,
    RECORD_FILE,
    STATUS_FILE,
    NewRun,
    check_relative,
    create_all,
)
from trainer_platform.runs.logs import read_lines
from trainer_platform.runs.status import RUNNING, TERMINAL_STATES, Status, check_state, utc_now

STAGING_DIR = ".staging"
_WANDB_ID_CHARS = string.ascii_lowercase + string.digits


def new_wandb_run_id() -> str:
    """A fresh W&B run id: 8 random lowercase letters and digits, like wandb's own."""
    return "".join(secrets.choice(_WANDB_ID_CHARS) for _ in range(8))


class RunDirError(Exception):
    """A run directory cannot be used as asked; the message names the path and what to do."""


class NotARunDirError(RunDirError):
    """The path is not a run directory."""


class RunDir:
    """A run directory. Get one with `allocate` (new run, then `create`) or `open` (existing run)."""

    def __init__(self, path: Path, *, _staging: Path | None = None, _claim: Path | None = None) -> None:
        self.path = path
        self._staging = _staging
        self._claim = _claim

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ---- getting one -------------------------------------------------------------------------------------------

    @classmethod
    def allocate(cls, root: Path, name: str) -> RunDir:
        """Reserve a unique path `root/name` (or `root/name-2`, `-3`, ...) for a new run; nothing appears there
        until `create`. Safe against concurrent allocations from threads, processes and hosts sharing `root`."""
        if not name or "/" in name or "\0" in name or name.startswith("."):
            raise ValueError(f"invalid run name {name!r}: it must be non-empty, without '/', not starting with '.'")
        root = Path(root).absolute()
        staging_root = root / STAGING_DIR
        staging_root.mkdir(parents=True, exist_ok=True)
        suffix = 1
        while True:
            candidate = name if suffix == 1 else f"{name}-{suffix}"
            suffix += 1
            final = root / candidate
            if os.path.lexists(final):
                continue
            claim = staging_root / f"{candidate}.claim"
            try:
                fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                continue
            except FileNotFoundError:  # another process removed the empty staging folder just now
                staging_root.mkdir(parents=True, exist_ok=True)
                suffix -= 1
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{socket.gethostname()} {os.getpid()} {utc_now()}\n")
            if os.path.lexists(final):  # a create() finished between our check and our claim
                claim.unlink()
                continue
            staging = Path(tempfile.mkdtemp(prefix=f"{candidate}-", dir=staging_root))
            return cls(final, _staging=staging, _claim=claim)

    @staticmethod
    def is_run_dir(path: Path) -> bool:
        """Whether `path` is a created run directory (it has a status.json)."""
        return (Path(path) / STATUS_FILE).is_file()

    @classmethod
    def open(cls, path: Path | str) -> RunDir:
        """An existing run directory; raises NotARunDirError naming the path when it is not one."""
        path = Path(path).expanduser().absolute()
        if not path.exists():
            raise NotARunDirError(f"{path}: no such directory; pass a run directory (e.g. runs/<name>)")
        if not cls.is_run_dir(path):
            raise NotARunDirError(
                f"{path} is not a run directory (no {STATUS_FILE}); pass a directory made by train.py, e.g. runs/<name>"
            )
        return cls(path)

    # ---- creating ----------------------------------------------------------------------------------------------

    def create(
        self,
        files: Mapping[str, str | bytes],
        *,
        argv: list[str] | None = None,
        status: Mapping[str, Any] | None = None,
    ) -> None:
        """Write the run's initial files, the provenance record and a `pending` status, all or nothing.

        `files` maps relative paths to contents; `*.sh` files are made executable. `argv` is the command line
        recorded in record.json (default: sys.argv); `status` adds fields to the first status.json (e.g. phases).
        On any failure nothing is left under the root.
        """
        create_all([NewRun(self, files, argv, status or {})])

    @staticmethod
    def create_all(runs: Sequence[NewRun]) -> None:
        """Create allocated run dirs, each as `create` would, all or none, at the cost of about one: their files
        are made durable in one concurrent pass and the shared provenance is taken once (runs/create.py)."""
        create_all(runs)

    def _take_staging(self) -> tuple[Path, Path]:
        """(staging folder, claim file) of a fresh allocation, handed over to runs/create.py once."""
        staging, claim = self._staging, self._claim
        if staging is None or claim is None:
            raise RunDirError(f"{self.path}: create() needs a fresh RunDir from RunDir.allocate()")
        self._staging = self._claim = None
        return staging, claim

    def update_files(self, files: Mapping[str, str | bytes]) -> None:
        """Replace (or add) files of a created run, each atomically; `*.sh` files are made executable."""
        if not self.is_run_dir(self.path):
            raise NotARunDirError(f"{self.path} is not a created run directory; create() it first")
        for rel, content in files.items():
            target = self.path / check_relative(rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, content, executable=rel.endswith(".sh"))

    # ---- well-known paths --------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def status_path(self) -> Path:
        return self.path / STATUS_FILE

    @property
    def record_path(self) -> Path:
        return self.path / RECORD_FILE

    @property
    def spec_path(self) -> Path:
        return self.path / "spec.yaml"

    @property
    def job_path(self) -> Path:
        return self.path / "job.json"

    @property
    def launch_script(self) -> Path:
        return self.path / "launch.sh"

    @property
    def log_path(self) -> Path:
        return self.path / "train.log"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def handle_path(self) -> Path:
        return self.path / "handle.json"

    @property
    def wandb_dir(self) -> Path:
        return self.path / "wandb"

    @property
    def wandb_id_path(self) -> Path:
        return self.path / "wandb_id.txt"

    # ---- status ------------------------------------------------------------------------------------------------

    def read_status(self) -> Status:
        """The run's current status.json."""
        try:
            data = json.loads(self.status_path.read_text())
            if not isinstance(data, dict):
                raise ValueError(f"it holds a JSON {type(data).__name__}, not an object")
            return Status.from_dict(data)
        except FileNotFoundError:
            raise NotARunDirError(f"{self.path} is not a run directory (no {STATUS_FILE})") from None
        except (OSError, UnicodeDecodeError, ValueError, TypeError) as e:
            raise RunDirError(f"{self.status_path} is unreadable ({e}); fix or delete the file") from None

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Serialise a read-modify-write of the run's files across threads and processes: an flock on the run dir's
        `.NAME.lock` (best effort). `status` guards status.json; `sync`, the files a remote launcher syncs back."""
        fd = os.open(self.path / f".{name}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def write_status(self, state: str | None = None, **fields: Any) -> Status:
        """Move the run to `state` (None: keep the current one), merging `fields` (exit_code, host, pid, or a
        launcher's own; None removes one) over the old status.

        Entering `running` from another state stamps `started` and clears `finished`/`exit_code`; entering a
        terminal state from a non-terminal one stamps `finished` (explicit fields win in both cases).
        """
        if state is not None:
            check_state(state)
        with self.lock("status"):
            old = self.read_status()
            state = old.state if state is None else state
            data = old.to_dict()
            if state == RUNNING and old.state != RUNNING:
                data.update(started=utc_now(), finished=None, exit_code=None)
            if state in TERMINAL_STATES and old.state not in TERMINAL_STATES:
                data["finished"] = utc_now()
            data.update(fields)
            data["state"] = state
            status = Status.from_dict(data)
            atomic_write(self.status_path, json_text(status.to_dict()))
        return status

    # ---- what the job wrote ------------------------------------------------------------------------------------

    def read_job(self) -> VerlJob:
        """The VerlJob saved in job.json."""
        try:
            return VerlJob.from_dict(json.loads(self.job_path.read_text()))
        except FileNotFoundError:
            raise RunDirError(f"{self.job_path} is missing; this run dir has no job to run") from None
        except (KeyError, TypeError, ValueError) as e:
            raise RunDirError(f"{self.job_path} is not a valid job ({type(e).__name__}: {e})") from None

    def read_record(self) -> dict[str, Any]:
        """The provenance record (record.json); empty when missing."""
        try:
            data = json.loads(self.record_path.read_text())
        except FileNotFoundError:
            return {}
        return data if isinstance(data, dict) else {}

    def read_metrics(self) -> list[dict[str, Any]]:
        """verl's file-logger records `{"step": N, "data": {...}}` of every attempt, oldest first (see runs.metrics)."""
        return self.metrics_reader().read(final=True)

    def metrics_reader(self) -> metrics.MetricsReader:
        """A reader of this run's metrics that returns, at each call, only the records added since the last one."""
        return metrics.MetricsReader(self.metrics_path)

    def archive_metrics(self) -> Path | None:
        """Before a resumed attempt, keep metrics.jsonl as metrics.attempt-N.jsonl (verl's file logger truncates it)."""
        return metrics.archive(self.metrics_path)

    def release(self) -> None:
        """Give back a name from `allocate` that will not be created (the run failed validation): no trace is left."""
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
        if self._claim is not None:
            with contextlib.suppress(OSError):
                self._claim.unlink()
            with contextlib.suppress(OSError):  # only succeeds when no other allocation is in flight
                self._claim.parent.rmdir()
        self._staging = self._claim = None

    def latest_metrics(self) -> tuple[int | None, dict[str, Any]]:
        """(last logged step, latest value of every metric key) over metrics.jsonl; (None, {}) when empty."""
        return metrics.latest(self.read_metrics())

    def last_checkpoint_step(self) -> int | None:
        """The step of the newest complete checkpoint (verl's latest_checkpointed_iteration.txt), or None."""
        try:
            return int((self.checkpoints_dir / "latest_checkpointed_iteration.txt").read_text().strip())
        except (OSError, ValueError):
            return None

    def checkpoints_location(self) -> str:
        """Where the run's checkpoints lie: `host:path` where a remote launcher's job wrote them (status.json's
        remote_checkpoints: only the pointer to the newest came back), else the local checkpoints/ folder."""
        remote = self.read_status().extra.get("remote_checkpoints")
        return str(remote) if remote else str(self.checkpoints_dir)

    # ---- W&B -----------------------------------------------------------------------------------------------------

    @property
    def wandb_run_id(self) -> str | None:
        """The W&B run id this run logs to (wandb_id.txt), or None."""
        try:
            return self.wandb_id_path.read_text().strip() or None
        except FileNotFoundError:
            return None

    @wandb_run_id.setter
    def wandb_run_id(self, run_id: str) -> None:
        atomic_write(self.wandb_id_path, run_id + "\n")

    def ensure_wandb_run_id(self) -> str:
        """The run's W&B id: made once (`new_wandb_run_id`), then reused.

        Safe against concurrent callers: the id file is published with an exclusive hard link.
        """
        existing = self.wandb_run_id
        if existing:
            return existing
        new_id = new_wandb_run_id()
        fd, tmp = tempfile.mkstemp(prefix=".wandb_id.", suffix=".tmp", dir=self.path)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(new_id + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            try:
                os.link(tmp, self.wandb_id_path)
            except FileExistsError:
                pass  # another process won the race: use its id
            except OSError:  # no hard links on this filesystem: last writer wins, still one id afterwards
                os.replace(tmp, self.wandb_id_path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        winner = self.wandb_run_id
        assert winner is not None
        return winner

    # ---- launcher handle and log ---------------------------------------------------------------------------------

    def save_handle(self, handle: Mapping[str, Any]) -> None:
        """Save the launcher's handle (plain JSON data) as handle.json."""
        atomic_write(self.handle_path, json_text(dict(handle)))

    def load_handle(self) -> dict[str, Any] | None:
        """The saved launcher handle, or None when the run was never submitted."""
        try:
            data = json.loads(self.handle_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise RunDirError(f"{self.handle_path} is unreadable ({e}); the run cannot be managed") from None
        return data if isinstance(data, dict) else None

    def open_log(self) -> BinaryIO:
        """train.log opened for appending, unbuffered: write whole lines so concurrent readers see whole lines."""
        return open(self.log_path, "ab", buffering=0)  # noqa: SIM115 - the caller owns and closes it

    def iter_log(
        self, follow: bool = False, done: Callable[[], bool] | None = None, poll_s: float = 0.2
    ) -> Iterator[str]:
        """Lines of train.log (without newlines). With `follow`, keep reading new lines until `done()` is true,
        then read what is left and stop."""
        return read_lines(self.log_path, follow=follow, done=done, poll_s=poll_s)
