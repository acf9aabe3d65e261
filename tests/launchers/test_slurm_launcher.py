"""The slurm launcher against a real Slurm on 127.0.0.1 (tests/slurm_service.py): the shared contract (submit,
status from a new process, logs, follow, cancel, failure exit code, resume), a batch as one array running in
parallel, requeue on USR2, and the hydra-submitit failure modes ours must not have (a cancelled pending array task
hanging the sweep, a task that raised shown as COMPLETED)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

import slurm_service
from launcher_contract import LauncherContract, MakeLauncher, new_run, python_job, wait_for_log
from launchers.base import Handle
from launchers.options import SlurmOptions
from launchers.slurm import SlurmLauncher
from slurm_service import release_requeued, sacct
from trainer_platform.errors import SpecError
from trainer_platform.runs import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED


class TestSlurmLauncher(LauncherContract):
    streams_to_console = False

    @pytest.fixture
    def make_launcher(self, slurm_cluster: slurm_service.Slurm) -> MakeLauncher:
        opts = SlurmOptions(name="slurm", time=10, setup=("export TP_CONTRACT_FROM_SETUP=1",))
        return lambda console: SlurmLauncher(opts)


def _launcher(**kw: object) -> SlurmLauncher:
    return SlurmLauncher(SlurmOptions.model_validate({"name": "slurm", "time": 10, **kw}))


def _wait_all(launcher: SlurmLauncher, handles: list[Handle], timeout_s: float = 90) -> list[int]:
    """Every handle's exit code; fails (instead of hanging) when they do not all end within `timeout_s`."""
    codes: list[int] = []
    deadline = time.monotonic() + timeout_s
    for handle in handles:
        while launcher.status(handle) in (QUEUED, RUNNING):
            assert time.monotonic() < deadline, f"{handle.data['job_id']} still not ended: the sweep hangs"
            time.sleep(0.3)
        codes.append(launcher.wait(handle))
    return codes


TIMED = """
import sys, time
print(f"start {time.time()}", flush=True)
time.sleep(2)
print(f"end {time.time()}", flush=True)
"""


@pytest.mark.timeout(180)
@pytest.mark.usefixtures("slurm_cluster")
def test_a_batch_is_one_array_running_in_parallel_and_failures_keep_their_code(tmp_path: Path) -> None:
    """Several jobs = one Slurm array whose tasks run side by side; a task that raised or exited non-zero is
    FAILED with its exit code in our status AND in Slurm's accounting (hydra-submitit showed it COMPLETED)."""
    jobs = [
        python_job(TIMED),
        python_job(TIMED + "raise ValueError('bad batch')\n"),
        python_job(TIMED + "sys.exit(3)\n"),
    ]
    runs = [new_run(tmp_path, job, name=f"r{i}") for i, job in enumerate(jobs)]
    launcher = _launcher()
    handles = launcher.submit(jobs, runs)
    ids = [str(h.data["job_id"]) for h in handles]
    array = ids[0].split("_")[0]
    assert ids == [f"{array}_{i}" for i in range(3)]  # one sbatch: one array
    assert _wait_all(launcher, handles) == [0, 1, 3]
    assert [r.read_status().state for r in runs] == [SUCCEEDED, FAILED, FAILED]
    assert "ValueError: bad batch" in runs[1].log_path.read_text()
    assert [sacct(i) for i in ids] == [("COMPLETED", "0:0"), ("FAILED", "1:0"), ("FAILED", "3:0")]
    spans = []
    for run in runs:
        log = run.log_path.read_text()
        spans.append((float(log.split("start ")[1].split()[0]), float(log.split("end ")[1].split()[0])))
    assert max(s for s, _ in spans) < min(e for _, e in spans), f"the tasks did not run in parallel: {spans}"
    for run in runs:  # every run dir records the array script that was submitted
        assert "#SBATCH --array=0-2%" in (run.path / "tp_sbatch.sh").read_text()


@pytest.mark.timeout(180)
@pytest.mark.usefixtures("slurm_cluster")
def test_cancelling_a_pending_array_task_does_not_hang_the_sweep(tmp_path: Path) -> None:
    """hydra-submitit waited forever for the result of a pending task cancelled with scancel: Slurm keeps no record
    of such a task. Ours sees the task gone from its array and records it cancelled."""
    jobs = [python_job("import time; time.sleep(1)") for _ in range(3)]
    runs = [new_run(tmp_path, job, name=f"r{i}") for i, job in enumerate(jobs)]
    launcher = _launcher(array_parallelism=1)
    handles = launcher.submit(jobs, runs)
    last = str(handles[2].data["job_id"])
    assert launcher.status(handles[2]) == QUEUED
    subprocess.run(["scancel", last], check=True)  # by hand, outside the platform
    assert _wait_all(launcher, handles, timeout_s=120) == [0, 0, 143]
    assert [r.read_status().state for r in runs] == [SUCCEEDED, SUCCEEDED, CANCELLED]
    # the trap: Slurm drops a task cancelled while pending without a trace, in the queue and in accounting alike
    queue = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-o", "%i"], capture_output=True, text=True).stdout
    accounting = subprocess.run(["sacct", "-n", "-P", "-X", "-o", "JobID"], capture_output=True, text=True).stdout
    assert last not in queue.split() and last not in accounting.split()


@pytest.mark.timeout(180)
@pytest.mark.usefixtures("slurm_cluster")
def test_usr2_requeues_and_the_next_attempt_runs(tmp_path: Path) -> None:
    """The time limit's (and a preemption's) signal: USR2 to the batch shell, where submitit's runner catches it,
    requeues the job and exits; the requeued attempt runs the same task. Sent by hand here (`scancel --signal`),
    since Slurm's own timer only fires within a minute of the limit. With launcher.time=null on the test partition
    (MaxTime=UNLIMITED: --time=0): a job submitted with no time for submitit failed here instead (its USR2 handler
    computed None * 60)."""
    code = """
        import os, sys, time
        attempt = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) + 1
        print(f"attempt {attempt}", flush=True)
        if attempt == 1:
            time.sleep(300)
    """
    job = python_job(code)
    run = new_run(tmp_path, job)
    launcher = _launcher(time=None)
    handle = launcher.submit([job], [run])[0]
    job_id = str(handle.data["job_id"])
    assert "#SBATCH --time=0" in (run.path / "tp_sbatch.sh").read_text().splitlines()
    wait_for_log(run, r"attempt 1", refresh=lambda: launcher.status(handle))
    subprocess.run(["scancel", "--batch", "--signal=USR2", job_id], check=True)
    release_requeued(job_id)
    assert launcher.wait(handle) == 0
    log = run.log_path.read_text()
    assert "attempt 1" in log and f"Slurm job {job_id} requeued, attempt 2" in log and "attempt 2" in log
    assert run.read_status().state == SUCCEEDED and sacct(job_id)[0] == "COMPLETED"


@pytest.mark.usefixtures("slurm_cluster")
def test_sbatch_refusal_is_one_clear_error(tmp_path: Path) -> None:
    job = python_job("print('never')")
    run = new_run(tmp_path, job)
    with pytest.raises(SpecError) as err:
        _launcher(partition="nosuchpartition").submit([job], [run])
    assert err.value.key == "launcher.partition" and "invalid partition" in str(err.value).lower()
    status = run.read_status()
    assert status.state == FAILED and "invalid partition" in str(status.extra.get("error")).lower()


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("slurm_cluster")
def test_setup_lines_run_before_the_job_and_a_failing_one_fails_it(tmp_path: Path) -> None:
    job = python_job("import os; print('setup ran:', os.environ.get('TP_FROM_SETUP'))")
    ok, bad = new_run(tmp_path, job, name="ok"), new_run(tmp_path, job, name="bad")
    handle = _launcher(setup=["export TP_FROM_SETUP=yes"]).submit([job], [ok])[0]
    assert SlurmLauncher().wait(handle) == 0 and ok.log_path.read_text() == "setup ran: yes\n"
    handle = _launcher(setup=["false  # a module that does not load"]).submit([job], [bad])[0]
    assert SlurmLauncher().wait(handle) != 0
    status = bad.read_status()
    assert status.state == FAILED and "before the job recorded its end" in str(status.extra.get("error"))
    assert "setup ran" not in bad.log_path.read_text() and "Slurm batch log" in bad.log_path.read_text()
