"""A batch of local jobs (a sweep on one machine): each job starts when the GPUs it needs are free and fewer than
`launcher.max_parallel` jobs run; it gets its own disjoint GPU set through CUDA_VISIBLE_DEVICES (its Ray temp dir
and ports are its own already: a private Ray per run in /tmp/tp-ray-<run>, on free ports). Jobs that wait are
`queued`; a thread of the submitting process starts them as others end. A signal while train.py follows the batch
stops all of it."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from launchers import proctree
from launchers.base import Handle, LaunchError
from launchers.gpu_pool import GpuPool
from trainer_platform.job import VerlJob
from trainer_platform.runs import CANCELLED, FAILED, QUEUED, RunDir

_POLL_S = 0.2


@dataclass
class _Item:
    job: VerlJob
    run: RunDir
    gpus: tuple[str, ...] | None = None
    started: bool = False
    done: bool = False


# start(job, run, env) -> handle; done(run) -> whether the started job has ended (its final status written)
Start = Callable[[VerlJob, RunDir, dict[str, str]], Handle]


class LocalBatch:
    def __init__(
        self, items: Sequence[tuple[VerlJob, RunDir]], pool: GpuPool, start: Start, ended: Callable[[RunDir], bool]
    ):
        self.items = [_Item(job, run) for job, run in items]
        self.pool = pool
        self._start = start
        self._ended = ended
        self._lock = threading.Lock()
        self.cancelled = False
        for item in self.items:
            if not pool.fits(item.job.gpus_per_node):
                raise LaunchError(
                    f"{item.run.path}: the job needs {item.job.gpus_per_node} GPUs but this machine offers "
                    f"{len(pool.gpus)} to local jobs ({', '.join(pool.gpus) or 'none'}); set launcher.gpus or compute"
                )
        self._thread = threading.Thread(target=self._loop, name="local-batch", daemon=True)

    def submit(self) -> list[Handle]:
        """Start what fits now, record the rest queued; returns the handles in order."""
        handles: dict[int, Handle] = {}
        with self._lock:
            for i, item in enumerate(self.items):
                handle = self._try_start(item)
                if handle is None:
                    handle = self._queue(item)
                handles[i] = handle
        if any(not item.started for item in self.items):
            self._thread.start()
        return [handles[i] for i in range(len(self.items))]

    def waiting(self, run: RunDir) -> bool:
        """Whether `run` is queued in this batch and will still start (not cancelled)."""
        with self._lock:
            return any(item.run.path == run.path and not item.started and not item.done for item in self.items)

    def pending(self) -> bool:
        """Whether any job of the batch is queued and will still start. Takes no lock: a signal handler calls it
        (launchers/local.py), possibly while this thread holds the lock."""
        return any(not item.started and not item.done for item in self.items)

    def cancel_all(self) -> None:
        """Stop the batch: queued jobs never start (cancelled), running ones get the launcher's cancel."""
        with self._lock:
            self.cancelled = True
            for item in self.items:
                if not item.started and not item.done:
                    item.done = True
                    item.run.write_status(CANCELLED, exit_code=130)

    def _try_start(self, item: _Item, queued: bool = False) -> Handle | None:
        if self.cancelled:
            return None
        if queued:
            status = item.run.read_status()
            if status.terminal or status.extra.get("cancel_requested"):  # cancelled while it waited
                item.done = True
                if not status.terminal:
                    item.run.write_status(CANCELLED)
                return None
        gpus = self.pool.take(item.job.gpus_per_node)
        if gpus is None:
            return None
        env = {"CUDA_VISIBLE_DEVICES": ",".join(gpus)} if item.job.gpus_per_node else {}
        try:
            handle = self._start(item.job, item.run, env)
        except BaseException:
            self.pool.give(gpus)
            raise
        item.gpus, item.started = gpus, True
        if env:
            item.run.write_status(gpus=",".join(gpus))
        return handle

    def _queue(self, item: _Item) -> Handle:
        host = socket.gethostname()
        data = {"queued": True, "host": host, "submitter_pid": os.getpid()}
        data["submitter_ticks"] = proctree.start_ticks(os.getpid())
        handle = Handle(launcher="local", run_dir=str(item.run.path.absolute()), data=data)
        item.run.save_handle(handle.to_dict())
        item.run.write_status(QUEUED, launcher="local", host=host, pid=None, cancel_requested=None, error=None)
        return handle

    def _loop(self) -> None:
        """Give back the GPUs of jobs that ended, start queued jobs that now fit; until none is left."""
        while True:
            time.sleep(_POLL_S)
            with self._lock:
                for item in self.items:
                    if item.started and not item.done and self._ended(item.run):
                        item.done = True
                        self.pool.give(item.gpus or ())
                pending = [item for item in self.items if not item.started and not item.done]
                for item in pending:
                    try:
                        self._try_start(item, queued=True)
                    except Exception as exc:  # noqa: BLE001 - recorded in the run; the others go on
                        item.done = True
                        item.run.write_status(FAILED, exit_code=127, error=f"{type(exc).__name__}: {exc}")
                if not any(not item.started and not item.done for item in self.items):
                    return
