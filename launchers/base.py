"""The launcher interface: a Handle (plain data saved in the run dir), the Launcher contract, and the registry.

A launcher is looked up by name: the built-in ones below, plus any that an installed distribution declares in the
entry-point group `trainer_platform.launchers`, e.g. in its pyproject.toml:

    [project.entry-points."trainer_platform.launchers"]
    k8s = "my_pkg.k8s:K8sLauncher"

A launcher class must be constructible with no arguments: management commands (status, logs, cancel) rebuild it
from the handle's launcher name alone, so a handle carries whatever they need (host, job id, address). Submit-time
options come from `conf/launcher/<name>.yaml` (validated against the class's `Options`) as `options=`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from launchers.options import LauncherOptions
from trainer_platform.job import VerlJob
from trainer_platform.runs import LOST, QUEUED, RUNNING, RunDir, RunDirError

ENTRY_POINT_GROUP = "trainer_platform.launchers"

# name -> "module:Class" of the launchers that ship with the platform (imported only when asked for).
_BUILTIN: dict[str, str] = {
    "local": "launchers.local:LocalLauncher",
    "ssh": "launchers.ssh:SshLauncher",
    "ray": "launchers.ray:RayLauncher",
    "slurm": "launchers.slurm:SlurmLauncher",
}


@dataclass(frozen=True)
class Handle:
    """What a launcher needs to find its job again, from any process: saved as the run dir's handle.json."""

    # the registered name of the launcher that submitted the job
    launcher: str
    # absolute path of the run directory
    run_dir: str
    # the launcher's own JSON-serialisable data (pid, job id, address, ...)
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"launcher": self.launcher, "run_dir": self.run_dir, "data": dict(self.data)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Handle:
        return cls(launcher=str(data["launcher"]), run_dir=str(data["run_dir"]), data=dict(data.get("data", {})))

    @property
    def rundir(self) -> RunDir:
        """The run directory this handle belongs to."""
        return RunDir.open(Path(self.run_dir))


class Launcher(ABC):
    """Runs a VerlJob somewhere and manages it afterwards. Every implementation passes the shared contract tests
    (tests/launchers/launcher_contract.py)."""

    # the name the launcher is registered under (and written into every Handle it makes)
    name: ClassVar[str]
    # the options conf/launcher/<name>.yaml may set
    Options: ClassVar[type[LauncherOptions]] = LauncherOptions

    def render(self, job: VerlJob, run_dir: RunDir) -> dict[str, str]:
        """The files that will run for `job` where it runs, by name (pure: shown by dry runs, golden-tested).
        Written into the run dir with its other files; empty for a launcher that runs the job's argv directly."""
        return {}

    @abstractmethod
    def submit(self, jobs: Sequence[VerlJob], run_dirs: Sequence[RunDir]) -> list[Handle]:
        """Start each job for its created run dir (one batch: a sweep is submitted at once), record it queued or
        running, save and return the handles (in order). Returns once the jobs are handed over."""

    @abstractmethod
    def wait(self, handle: Handle) -> int:
        """Block until the job ends and return its exit code (the final status is in the run dir by then)."""

    @abstractmethod
    def status(self, handle: Handle) -> str:
        """The job's state: one of the run states, or `lost` when it is recorded running but its process is gone."""

    @abstractmethod
    def logs(self, handle: Handle, follow: bool = False) -> Iterator[str]:
        """The job's output lines so far; with `follow`, keep yielding new lines until the job ends."""

    @abstractmethod
    def cancel(self, handle: Handle) -> None:
        """Stop the job and everything it started; its status becomes `cancelled`. No-op once it has ended."""


# ---- polling, for launchers whose status() asks where the job runs and reconciles (ray, ssh, slurm) ----------------

# the states of a job that has not ended
ACTIVE = (QUEUED, RUNNING)


def wait_by_polling(launcher: Launcher, handle: Handle, poll_s: float) -> int:
    """`Launcher.wait` by calling `status` every `poll_s` seconds until the job has ended: its exit code, 1 when it
    is lost or has none."""
    while (state := launcher.status(handle)) in ACTIVE:
        time.sleep(poll_s)
    code = handle.rundir.read_status().exit_code
    return 1 if state == LOST or code is None else code


def logs_by_polling(launcher: Launcher, handle: Handle, follow: bool, poll_s: float) -> Iterator[str]:
    """`Launcher.logs` from the local train.log, which `status` brings up to date: once now, and every `poll_s`
    seconds while following."""
    if not handle.rundir.read_status().terminal:
        launcher.status(handle)
    return handle.rundir.iter_log(follow=follow, done=lambda: launcher.status(handle) not in ACTIVE, poll_s=poll_s)


def poll_until_ended(launcher: Launcher, handle: Handle, timeout_s: float, poll_s: float) -> None:
    """Call `status` every `poll_s` seconds until the job has ended or `timeout_s` have passed (after a cancel)."""
    deadline = time.monotonic() + timeout_s
    while launcher.status(handle) in ACTIVE and time.monotonic() < deadline:
        time.sleep(poll_s)


class UnknownLauncherError(ValueError):
    """No launcher is registered under the requested name."""


class LaunchError(RuntimeError):
    """A launcher could not start or reach a job; the message says what failed and where."""


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def available_launchers() -> list[str]:
    """Names of every launcher that can be used: built-in and entry-point plugins."""
    return sorted(set(_BUILTIN) | set(_entry_points()))


def get_launcher_class(name: str) -> type[Launcher]:
    """The launcher class registered under `name`; UnknownLauncherError lists the allowed names otherwise."""
    target: Any
    if name in _BUILTIN:
        module_name, _, attr = _BUILTIN[name].partition(":")
        target = getattr(importlib.import_module(module_name), attr)
    else:
        eps = _entry_points()
        if name not in eps:
            allowed = ", ".join(available_launchers())
            raise UnknownLauncherError(f"unknown launcher {name!r}; allowed: {allowed}")
        target = eps[name].load()
    if not (isinstance(target, type) and issubclass(target, Launcher)):
        raise TypeError(f"launcher {name!r} resolves to {target!r}, which is not a Launcher subclass")
    return target


def make_launcher(name: str, **options: Any) -> Launcher:
    """An instance of the launcher registered under `name`, configured with its submit-time `options`."""
    return get_launcher_class(name)(**options)


def handle_of(run_dir: RunDir) -> Handle:
    """The handle saved in `run_dir`; RunDirError when the run was never submitted."""
    data = run_dir.load_handle()
    if data is None:
        raise RunDirError(f"{run_dir.path} has no {run_dir.handle_path.name}: the run was never submitted")
    try:
        handle = Handle.from_dict(data)
    except (KeyError, TypeError, ValueError) as e:
        raise RunDirError(f"{run_dir.handle_path} is not a valid handle ({e})") from None
    # the run dir may have been moved since submit: trust where we found it
    return Handle(launcher=handle.launcher, run_dir=str(run_dir.path), data=handle.data)


def launcher_for(handle: Handle) -> Launcher:
    """A launcher able to manage the job behind `handle` (built with default options)."""
    return make_launcher(handle.launcher)
