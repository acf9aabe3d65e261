"""The contract every launcher must pass, with small real jobs (`python -c ...`).

Use it by subclassing in a `Test*` class and providing the `make_launcher` fixture:

    class TestMyLauncher(LauncherContract):
        @pytest.fixture
        def make_launcher(self, my_service) -> Callable[[io.StringIO], Launcher]:
            return lambda console: MyLauncher(address=my_service, console=console)

The jobs run on this host (test services are all local), so the suite checks pids directly: after a cancel, the
job's child and grandchild must be gone. Set `streams_to_console = False` for a launcher that does not copy the
job's output to the submitting console.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from launchers.base import Handle, Launcher, handle_of, launcher_for
from launchers.proctree import pid_alive
from trainer_platform.job import VerlJob
from trainer_platform.runs import CANCELLED, FAILED, QUEUED, RUNNING, STOPPED, SUCCEEDED, RunDir

REPO_ROOT = Path(__file__).resolve().parents[2]

MakeLauncher = Callable[[io.StringIO], Launcher]


def python_job(code: str, env: dict[str, str] | None = None) -> VerlJob:
    """A job running `code` with the launcher's python."""
    return VerlJob(entry_point="contract", argv=("python", "-c", textwrap.dedent(code)), env=env or {})


def new_run(root: Path, job: VerlJob, name: str = "run") -> RunDir:
    """A created run dir holding `job` as job.json, as train.py makes it."""
    import json

    run = RunDir.allocate(root, name)
    run.create({"job.json": json.dumps(job.to_dict()), "spec.yaml": "contract: true\n"}, argv=["contract"])
    return run


def wait_for_log(
    run: RunDir, pattern: str, timeout_s: float = 60.0, refresh: Callable[[], object] | None = None
) -> re.Match[str]:
    """Poll train.log until `pattern` matches; fail after `timeout_s`. `refresh` (e.g. a remote launcher's
    status, which syncs the log back) runs before each look."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if refresh is not None:
            refresh()
        text = run.log_path.read_text() if run.log_path.exists() else ""
        match = re.search(pattern, text)
        if match:
            return match
        time.sleep(0.1)
    pytest.fail(f"{pattern!r} never appeared in {run.log_path}")


def wait_gone(pids: list[int], timeout_s: float = 15.0) -> list[int]:
    """The pids still alive after waiting up to `timeout_s` for them to end."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if pid_alive(p)]


# A job that starts grandchildren and sleeps: cancelling must stop all of them, including one that moved to a
# process group of its own, as Ray's worker processes do.
TREE_JOB = """
    import os, subprocess, sys, time
    child = subprocess.Popen(["sleep", "300"])
    own_group = subprocess.Popen(["sleep", "300"], preexec_fn=os.setpgrp)
    print(f"pids {os.getpid()} {child.pid} {own_group.pid}", flush=True)
    time.sleep(300)
"""


class LauncherContract:
    """Tests every launcher passes. Subclasses provide the `make_launcher` fixture."""

    streams_to_console = True

    # whether the job sees the submitting environment's (secret) variables; a cluster launcher's job sees the
    # cluster's environment instead
    passes_submitter_env = True

    def job_cwd(self, handle: Handle) -> str | None:
        """Where the job runs: the run dir itself, or a remote launcher's copy of it (None: the scheduler's)."""
        return handle.run_dir

    @pytest.fixture
    def make_launcher(self) -> MakeLauncher:
        raise NotImplementedError("a launcher's test class provides make_launcher")

    @pytest.mark.timeout(120)
    def test_success_output_status_and_handle(self, make_launcher: MakeLauncher, tmp_path: Path) -> None:
        console = io.StringIO()
        launcher = make_launcher(console)
        job = python_job("for i in range(3): print(f'hello {i}')\nprint('done ✓')")
        run = new_run(tmp_path, job)
        handle = launcher.submit([job], [run])[0]
        assert Handle.from_dict(run.load_handle() or {}).data == handle.data
        assert handle.launcher == launcher.name
        assert launcher.wait(handle) == 0
        status = run.read_status()
        assert status.state == SUCCEEDED and status.exit_code == 0
        assert status.started and status.finished and status.created
        assert launcher.status(handle) == SUCCEEDED
        log = run.log_path.read_text()
        assert log == "hello 0\nhello 1\nhello 2\ndone ✓\n"
        if self.streams_to_console:
            assert console.getvalue() == log
        assert list(launcher.logs(handle)) == log.splitlines()
        assert list(launcher.logs(handle, follow=True)) == log.splitlines()

    @pytest.mark.timeout(120)
    def test_failure_exit_code(self, make_launcher: MakeLauncher, tmp_path: Path) -> None:
        launcher = make_launcher(io.StringIO())
        job = python_job("import sys\nprint('bad input', file=sys.stderr)\nsys.exit(3)")
        run = new_run(tmp_path, job)
        handle = launcher.submit([job], [run])[0]
        assert launcher.wait(handle) == 3
        status = run.read_status()
        assert status.state == FAILED and status.exit_code == 3
        assert launcher.status(handle) == FAILED
        assert run.log_path.read_text() == "bad input\n"  # stderr is merged into the log

    @pytest.mark.timeout(120)
    def test_env_and_cwd(self, make_launcher: MakeLauncher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TP_CONTRACT_SECRET", "s3cret-inherited")
        launcher = make_launcher(io.StringIO())
        code = """
            import json, os
            print(json.dumps({"cwd": os.getcwd(), "var": os.environ.get("TP_CONTRACT_VAR"),
                              "secret": os.environ.get("TP_CONTRACT_SECRET")}))
        """
        job = python_job(code, env={"TP_CONTRACT_VAR": "a value with spaces"})
        run = new_run(tmp_path, job)
        assert launcher.wait(launcher.submit([job], [run])[0]) == 0
        import json

        seen = json.loads(run.log_path.read_text())
        cwd = self.job_cwd(handle_of(run))
        assert cwd is None or Path(seen["cwd"]).resolve() == Path(cwd).resolve()
        assert seen["var"] == "a value with spaces"
        assert seen["secret"] == ("s3cret-inherited" if self.passes_submitter_env else None)
        for path in run.path.rglob("*"):  # inherited secrets are never written into the run dir
            if path.is_file() and path.name != "train.log":
                assert "s3cret-inherited" not in path.read_text(errors="replace"), path

    @pytest.mark.timeout(120)
    def test_status_running_and_logs_follow(self, make_launcher: MakeLauncher, tmp_path: Path) -> None:
        launcher = make_launcher(io.StringIO())
        job = python_job("import time\nfor i in range(4):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.3)")
        run = new_run(tmp_path, job)
        handle = launcher.submit([job], [run])[0]
        assert launcher.status(handle) in (QUEUED, RUNNING)  # a scheduler may not have started it yet
        followed = list(launcher.logs(handle, follow=True))  # returns once the job has ended
        assert followed == [f"tick {i}" for i in range(4)]
        assert launcher.wait(handle) == 0
        assert run.log_path.read_text().splitlines() == followed

    @pytest.mark.timeout(180)
    def test_cancel_from_another_process_stops_the_tree(self, make_launcher: MakeLauncher, tmp_path: Path) -> None:
        launcher = make_launcher(io.StringIO())
        job = python_job(TREE_JOB)
        run = new_run(tmp_path, job)
        handle = launcher.submit([job], [run])[0]
        match = wait_for_log(run, r"pids (\d+) (\d+) (\d+)", refresh=lambda: launcher.status(handle))
        pids = [int(p) for p in match.groups()]
        code = (
            "import sys; from launchers.base import handle_of, launcher_for; from trainer_platform.runs import RunDir\n"
            "h = handle_of(RunDir.open(sys.argv[1])); launcher_for(h).cancel(h)"
        )
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        subprocess.run([sys.executable, "-c", code, str(run.path)], check=True, env=env, timeout=120)
        assert launcher.wait(handle) != 0
        assert wait_gone(pids) == []
        assert run.read_status().state == CANCELLED
        assert launcher.status(handle) == CANCELLED
        fresh = handle_of(RunDir.open(run.path))
        launcher_for(fresh).cancel(fresh)  # cancelling an ended run is a no-op
        assert run.read_status().state == CANCELLED

    @pytest.mark.timeout(120)
    def test_detached_status_and_logs_from_a_new_process(self, make_launcher: MakeLauncher, tmp_path: Path) -> None:
        launcher = make_launcher(io.StringIO())
        # the job ends when the new process has seen it running (a fixed sleep lost that race under load); the
        # go-file's folder is open to every user, as the job may run as another one (ssh)
        folder = Path(tempfile.mkdtemp(prefix="tp-go-"))
        folder.chmod(0o777)
        go = folder / "go"
        job = python_job(
            "import os, sys, time\nprint('started', flush=True)\n"
            f"deadline = time.time() + 90\nwhile not os.path.exists({str(go)!r}) and time.time() < deadline:\n"
            "    time.sleep(0.05)\nprint('end')\nsys.exit(4)"
        )
        run = new_run(tmp_path, job)
        launcher.submit([job], [run])
        code = (
            "import sys; from launchers.base import handle_of, launcher_for; from trainer_platform.runs import RunDir\n"
            "h = handle_of(RunDir.open(sys.argv[1])); l = launcher_for(h)\n"
            "print(l.status(h)); open(sys.argv[2], 'w').close()\n"
            "print('|'.join(l.logs(h, follow=True))); print(l.status(h))"
        )
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        res = subprocess.run(
            [sys.executable, "-c", code, str(run.path), str(go)],
            env=env,
            timeout=100,
            text=True,
            capture_output=True,
            check=True,
        )
        first, lines, last = res.stdout.strip().splitlines()
        assert first in (QUEUED, RUNNING) and lines == "started|end" and last == FAILED, res.stdout
        status = RunDir.open(run.path).read_status()
        assert status.state == FAILED and status.exit_code == 4 and status.finished  # persisted by `status`

    @pytest.mark.timeout(120)
    def test_resume_reuses_the_run_dir(self, make_launcher: MakeLauncher, tmp_path: Path) -> None:
        launcher = make_launcher(io.StringIO())
        first = python_job("print('first attempt')")
        run = new_run(tmp_path, first)
        assert launcher.wait(launcher.submit([first], [run])[0]) == 0
        again = python_job("print('second attempt')")
        assert launcher.wait(launcher.submit([again], [run])[0]) == 0
        assert run.read_status().state == SUCCEEDED
        assert run.log_path.read_text() == "first attempt\nsecond attempt\n"

    @pytest.mark.timeout(120)
    def test_a_diagnostics_stop_rule_ends_the_run_as_stopped(self, make_launcher: MakeLauncher, tmp_path: Path) -> None:
        """The monitor beside the job (trainer_platform.diagnostics) sees a NaN loss at step 3 and stops the job;
        the run ends `stopped` with the rule, metric and step as its reason."""
        from trainer_platform.diagnostics import config_from_dict

        launcher = make_launcher(io.StringIO())
        writer = """
            import json, os, time
            path = os.path.join(os.environ["TP_RUN_DIR"], "metrics.jsonl")
            for step in range(1, 400):
                loss = float("nan") if step >= 3 else 1.0 / step
                with open(path, "a") as f:
                    f.write(json.dumps({"step": step, "data": {"train/loss": loss}}) + "\\n")
                time.sleep(0.25)
        """
        job = replace(
            python_job(writer, env={"TP_RUN_DIR": "${TP_RUN_DIR}"}),
            diagnostics=config_from_dict({"poll_s": 0.2}).to_dict(),
        )
        run = new_run(tmp_path, job)
        handle = launcher.submit([job], [run])[0]
        assert launcher.wait(handle) != 0
        status = run.read_status()
        assert status.state == STOPPED, status
        reason = status.extra["stop_reason"]
        assert (reason["rule"], reason["metric"], reason["step"]) == ("non_finite", "train/loss", 3)
        assert "trainer_platform diagnostics: stopping the run" in run.log_path.read_text()
        # what the job and its monitor wrote is in the local run dir (a remote launcher synced it back)
        steps = [json.loads(line)["step"] for line in (run.path / "metrics.jsonl").read_text().splitlines()]
        assert steps == list(range(1, len(steps) + 1)) and 3 <= len(steps) < 60, f"steps {steps}: not stopped at 3?"
        anomalies = [json.loads(line) for line in (run.path / "diagnostics.jsonl").read_text().splitlines()]
        assert any(a["rule"] == "non_finite" and a["step"] == 3 for a in anomalies), anomalies
