"""The local launcher: the shared contract, Ctrl-C handling, leftovers, lost processes, and the registry."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from launcher_contract import REPO_ROOT, TREE_JOB, LauncherContract, MakeLauncher, new_run, python_job, wait_gone
from launchers import proctree
from launchers.base import (
    Handle,
    UnknownLauncherError,
    available_launchers,
    get_launcher_class,
    handle_of,
    launcher_for,
    make_launcher,
)
from launchers.local import LocalLauncher
from trainer_platform.runs import CANCELLED, LOST, RUNNING, SUCCEEDED, RunDir, RunDirError


class TestLocalLauncher(LauncherContract):
    @pytest.fixture
    def make_launcher(self) -> MakeLauncher:
        return lambda console: LocalLauncher(grace_s=5.0, console=console)


# Submits a job that starts a grandchild, prints the job's pids, and waits: the test then signals this driver.
# With a 4th argument, the driver first signals itself with that signal between submit and wait, once the job runs.
DRIVER = """
    import os, sys, textwrap, time
    from pathlib import Path
    from launchers.local import LocalLauncher
    from trainer_platform.job import VerlJob
    from trainer_platform.runs import RunDir

    run = RunDir.allocate(Path(sys.argv[1]), "run")
    run.create({"spec.yaml": "x: 1\\n"})
    job = VerlJob(entry_point="t", argv=("python", "-c", textwrap.dedent(sys.argv[2])))
    launcher = LocalLauncher(grace_s=float(sys.argv[3]), echo=True)
    handle = launcher.submit([job], [run])[0]
    if len(sys.argv) > 4:
        while "pids" not in run.log_path.read_text():
            time.sleep(0.05)
        os.kill(os.getpid(), int(sys.argv[4]))
        time.sleep(0.5)
    sys.exit(launcher.wait(handle))
"""

# Like TREE_JOB, but the job ignores SIGTERM: only SIGKILL stops it.
STUBBORN_JOB = """
    import os, signal, subprocess, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen(["sleep", "300"])
    print(f"pids {os.getpid()} {child.pid}", flush=True)
    time.sleep(300)
"""


def _drive(tmp_path: Path, job_code: str, grace_s: float, signals: list[signal.Signals]) -> tuple[int, RunDir, str]:
    """Run DRIVER, wait for the job's pids on its console, send `signals`; return (exit code, run, output)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    driver = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(DRIVER), str(tmp_path), job_code, str(grace_s)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert driver.stdout is not None
    first = driver.stdout.readline()  # the job's first line, streamed through the driver's console
    assert first.startswith("pids "), first
    pids = [int(p) for p in first.split()[1:]]
    start = time.monotonic()
    for sig in signals:
        driver.send_signal(sig)
        time.sleep(0.3)
    rest, _ = driver.communicate(timeout=60)
    assert wait_gone(pids) == []
    if len(signals) > 1:
        assert time.monotonic() - start < grace_s  # the second Ctrl-C skipped the grace period
    return driver.returncode, RunDir.open(tmp_path / "run"), first + rest


@pytest.mark.timeout(120)
def test_ctrl_c_stops_the_tree_and_exits_130(tmp_path: Path) -> None:
    code, run, output = _drive(tmp_path, TREE_JOB, 5.0, [signal.SIGINT])
    assert code == 130
    status = run.read_status()
    assert status.state == CANCELLED and status.exit_code == 130 and status.finished
    assert run.log_path.read_text() == output


@pytest.mark.timeout(120)
def test_sigterm_exits_143(tmp_path: Path) -> None:
    code, run, _ = _drive(tmp_path, TREE_JOB, 5.0, [signal.SIGTERM])
    assert code == 143
    assert run.read_status().state == CANCELLED and run.read_status().exit_code == 143


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_between_submit_and_wait_still_stops_the_job(tmp_path: Path, sig: signal.Signals, code: int) -> None:
    """The race behind the flaky signal tests under load: a signal that landed after the job started but before
    wait() took over killed train.py by Python's default (SIGTERM) or a KeyboardInterrupt, leaving the job (in its
    own session) running, unrecorded. It is now kept for wait(), which stops the job."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    args = [str(tmp_path), TREE_JOB, "5.0", str(int(sig))]
    driver = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(DRIVER), *args], capture_output=True, text=True, env=env, timeout=90
    )
    pids = [int(p) for p in driver.stdout.split("pids ", 1)[1].split()]
    assert wait_gone(pids) == []
    assert driver.returncode == code, driver.stderr
    status = RunDir.open(tmp_path / "run").read_status()
    assert status.state == CANCELLED and status.exit_code == code


@pytest.mark.timeout(120)
def test_second_ctrl_c_kills_a_job_ignoring_sigterm(tmp_path: Path) -> None:
    code, run, _ = _drive(tmp_path, STUBBORN_JOB, 30.0, [signal.SIGINT, signal.SIGINT])
    assert code == 130 and run.read_status().state == CANCELLED


@pytest.mark.timeout(120)
def test_leftover_processes_end_with_the_job(tmp_path: Path) -> None:
    code = """
        import os, subprocess
        child = subprocess.Popen(["sleep", "300"])  # keeps the output pipe open after the job exits
        print(f"leftover {child.pid}", flush=True)
    """
    job = python_job(code)
    run = new_run(tmp_path, job)
    launcher = LocalLauncher(grace_s=2.0, echo=False)
    start = time.monotonic()
    assert launcher.wait(launcher.submit([job], [run])[0]) == 0
    assert time.monotonic() - start < 30
    leftover = int(run.log_path.read_text().split()[1])
    assert wait_gone([leftover]) == []
    assert run.read_status().state == SUCCEEDED


def test_by_default_the_output_goes_to_train_log_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The console shows a run from its run dir (trainer_platform.console); the launcher itself prints nothing."""
    job = python_job("print('from the job', flush=True)")
    run = new_run(tmp_path, job)
    launcher = LocalLauncher(grace_s=2.0)
    assert launcher.wait(launcher.submit([job], [run])[0]) == 0
    assert capsys.readouterr().out == ""
    assert run.log_path.read_text() == "from the job\n"


def test_running_status_with_a_dead_process_is_lost(tmp_path: Path) -> None:
    run = new_run(tmp_path, python_job("pass"))
    dead = subprocess.Popen(["true"])
    dead.wait()
    data = {"pid": dead.pid, "pgid": dead.pid, "host": socket.gethostname(), "start_ticks": None}
    handle = Handle(launcher="local", run_dir=str(run.path), data=data)
    run.save_handle(handle.to_dict())
    run.write_status(RUNNING, pid=dead.pid, host=socket.gethostname())
    assert LocalLauncher().status(handle) == LOST
    assert LocalLauncher().wait(handle) == 1  # nothing to wait for
    other_host = Handle(launcher="local", run_dir=str(run.path), data={**data, "host": "elsewhere"})
    assert LocalLauncher().status(other_host) == RUNNING  # cannot check another host: trust status.json


def test_a_gone_process_whose_submitter_has_not_recorded_its_end_yet_is_not_lost(tmp_path: Path) -> None:
    # the submitter's reader thread drains output and waits for the diagnostics monitor before it writes the final
    # status: in that window another process asking must not see `lost` (it did, under load: the contract test's
    # detached status read `lost` after the job's own output had ended)
    run = new_run(tmp_path, python_job("pass"))
    dead = subprocess.Popen(["true"])
    dead.wait()
    me = {"submitter_pid": os.getpid(), "submitter_ticks": proctree.start_ticks(os.getpid())}
    data = {"pid": dead.pid, "pgid": dead.pid, "host": socket.gethostname(), "start_ticks": None, **me}
    run.write_status(RUNNING, pid=dead.pid, host=socket.gethostname())
    assert LocalLauncher().status(Handle(launcher="local", run_dir=str(run.path), data=data)) == RUNNING
    gone = {**data, "submitter_pid": dead.pid, "submitter_ticks": 1}  # its submitter died without recording it
    assert LocalLauncher().status(Handle(launcher="local", run_dir=str(run.path), data=gone)) == LOST


@pytest.mark.timeout(60)
def test_submit_refuses_a_running_run(tmp_path: Path) -> None:
    job = python_job("import time; time.sleep(30)")
    run = new_run(tmp_path, job)
    launcher = LocalLauncher(grace_s=2.0, echo=False)
    handle = launcher.submit([job], [run])[0]
    with pytest.raises(RunDirError, match="already running"):
        launcher.submit([job], [run])[0]
    launcher.cancel(handle)
    assert launcher.wait(handle) == 143 and run.read_status().state == CANCELLED
    assert launcher.wait(launcher.submit([python_job("print('again')")], [run])[0]) == 0  # a resume reuses the run dir
    assert run.read_status().state == SUCCEEDED and run.log_path.read_text().endswith("again\n")


def test_missing_executable_fails_cleanly(tmp_path: Path) -> None:
    from launchers.base import LaunchError
    from trainer_platform.job import VerlJob

    job = VerlJob(entry_point="t", argv=("/nonexistent/interpreter", "-c", "pass"))
    run = new_run(tmp_path, job)
    with pytest.raises(LaunchError, match="cannot start"):
        LocalLauncher(echo=False).submit([job], [run])
    assert run.read_status().state == "failed" and run.read_status().exit_code == 127


def test_registry() -> None:
    assert "local" in available_launchers()
    assert get_launcher_class("local") is LocalLauncher
    assert isinstance(make_launcher("local", grace_s=1.0), LocalLauncher)
    with pytest.raises(UnknownLauncherError, match=r"unknown launcher 'nope'; allowed: .*local"):
        get_launcher_class("nope")


def test_handle_of_follows_a_moved_run_dir(tmp_path: Path) -> None:
    run = new_run(tmp_path, python_job("pass"))
    launcher = LocalLauncher(echo=False, console=io.StringIO())
    assert launcher.wait(launcher.submit([python_job("pass")], [run])[0]) == 0
    moved = tmp_path / "moved"
    run.path.rename(moved)
    handle = handle_of(RunDir.open(moved))
    assert handle.run_dir == str(moved) and launcher_for(handle).status(handle) == SUCCEEDED
    with pytest.raises(RunDirError, match="never submitted"):
        handle_of(new_run(tmp_path, python_job("pass"), name="fresh"))
