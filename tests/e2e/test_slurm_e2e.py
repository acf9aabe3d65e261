"""`python train.py ... launcher=slurm` end to end on the test Slurm (tests/slurm_service.py): the tiny SFT run
submitted without -m and followed to the end, a sweep as one job array running in parallel, Ctrl-C while following,
and a requeue (preemption) that resumes from the last checkpoint into the same W&B run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT, run_dir_of, run_train
from launchers.base import handle_of, launcher_for
from slurm_service import release_requeued, sacct
from trainer_platform.runs import CANCELLED, QUEUED, RUNNING, SUCCEEDED, RunDir

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("slurm_cluster")]

SFT = ("algorithm=sft", "data=tiny_sft", "launcher=slurm")


def job_ids(stdout: str) -> list[str]:
    return re.findall(r"submitted \(job id (\d+(?:_\d+)?)\)", stdout)


def run_dirs(stdout: str) -> list[Path]:
    """Every run dir train.py named, in order, once each."""
    seen: dict[Path, None] = {}
    for line in stdout.splitlines():
        if line.startswith("run dir: "):
            seen[Path(line.removeprefix("run dir: "))] = None
    return list(seen)


def wait_run(run: Path, timeout_s: float = 600) -> int:
    """Follow a detached run from its run dir, as `trainer-platform status` would, until it ends."""
    handle = handle_of(RunDir.open(run))
    launcher = launcher_for(handle)
    deadline = time.monotonic() + timeout_s
    while launcher.status(handle) in (QUEUED, RUNNING):
        assert time.monotonic() < deadline, f"{run} did not end within {timeout_s} s"
        time.sleep(1)
    return launcher.wait(handle)


@pytest.mark.timeout(900)
def test_tiny_sft_without_m_goes_through_slurm_and_follows_to_the_end(tmp_path: Path) -> None:
    """hydra-submitit's launcher was silently unused without -m (the run went local); launcher=slurm always
    submits, and launcher.wait=true follows the run with the console."""
    local = tmp_path / "local" / "launcher"  # a user's cluster file in conf/local, as the README shows
    local.mkdir(parents=True)
    (local / "testcluster.yaml").write_text(
        'defaults: [slurm, _self_]\npartition: debug\ntime: "00:10:00"\nsetup: ["export TP_SETUP_RAN=1"]\n'
    )
    env = {"TRAINER_PLATFORM_LOCAL_CONF": str(tmp_path / "local")}
    args = ("algorithm=sft", "data=tiny_sft", "launcher=testcluster", "name=s", "train.steps=2", "launcher.wait=true")
    res = run_train(*args, cwd=tmp_path, env=env)
    run = run_dir_of(res)
    sbatch = (run / "tp_sbatch.sh").read_text()
    assert "#SBATCH --partition=debug" in sbatch and "#SBATCH --time=10" in sbatch
    assert "export TP_SETUP_RAN=1" in sbatch
    [job_id] = job_ids(res.stdout)
    status = RunDir.open(run).read_status()
    assert status.state == SUCCEEDED and status.exit_code == 0 and status.extra["job_id"] == job_id
    assert sacct(job_id) == ("COMPLETED", "0:0")
    assert any(line.startswith("run succeeded: 2/2 steps") for line in res.stdout.splitlines()), res.stdout
    assert handle_of(RunDir.open(run)).launcher == "slurm"


@pytest.mark.timeout(900)
def test_a_sweep_is_one_array_running_in_parallel(tmp_path: Path) -> None:
    res = run_train("-m", *SFT, "train.steps=1", "train.seed=1,2", cwd=tmp_path)  # detached: returns once submitted
    runs = run_dirs(res.stdout)
    ids = job_ids(res.stdout)
    assert len(runs) == 2 and len(ids) == 2
    array = ids[0].split("_")[0]
    assert sorted(ids) == [f"{array}_0", f"{array}_1"]
    assert [wait_run(run) for run in runs] == [0, 0]
    statuses = [RunDir.open(run).read_status() for run in runs]
    assert [s.state for s in statuses] == [SUCCEEDED, SUCCEEDED]
    assert max(str(s.started) for s in statuses) < min(str(s.finished) for s in statuses), "not in parallel"


@pytest.mark.timeout(600)
def test_ctrl_c_while_following_cancels_the_array_and_names_its_ids(tmp_path: Path) -> None:
    """hydra-submitit left the array running after Ctrl-C, its id never printed."""
    argv = [
        sys.executable,
        str(REPO_ROOT / "train.py"),
        "-m",
        *SFT,
        "train.steps=1",
        "train.seed=1,2",
        "launcher.wait=true",
    ]
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    while len(job_ids("\n".join(lines))) < 2:
        line = proc.stdout.readline()
        assert line, "train.py ended before submitting:\n" + "".join(lines)
        lines.append(line)
    proc.send_signal(signal.SIGINT)
    out = "".join(lines) + proc.communicate(timeout=300)[0]
    assert proc.returncode == 130, out
    ids = job_ids(out)
    for job_id in ids:
        assert f"cancelling job id {job_id}" in out, out
    queue = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True).stdout.split()
    assert not set(ids) & set(queue), f"left in the queue: {queue}"
    runs = [Path(line.split()[-1]) for line in out.splitlines() if "submitted (job id" in line]
    assert [RunDir.open(run).read_status().state for run in runs] == [CANCELLED, CANCELLED]


@pytest.mark.timeout(900)
def test_requeue_resumes_from_the_last_checkpoint_into_the_same_wandb_run(tmp_path: Path) -> None:
    """A preemption (here `scontrol requeue` of the running job): Slurm kills and requeues it, the next attempt
    resumes from the newest checkpoint (steps already done are not run again) into the same W&B run, and the
    submitting environment's W&B key reaches the job without being written anywhere."""
    secret = "tp-test-wandb-key-0123456789"
    res = run_train(
        *SFT,
        "name=rq",
        "train.steps=6",
        "train.save_every=2",
        "logger=wandb",
        "logger.wandb.mode=offline",
        cwd=tmp_path,
        env={"WANDB_API_KEY": secret},
    )
    run = run_dir_of(res)
    [job_id] = job_ids(res.stdout)
    rundir = RunDir.open(run)
    deadline = time.monotonic() + 600
    while (rundir.last_checkpoint_step() or 0) < 2:
        assert time.monotonic() < deadline and not rundir.read_status().terminal, rundir.log_path.read_text()[-3000:]
        time.sleep(0.1)
    subprocess.run(["scontrol", "requeue", job_id], check=True)
    done_before = rundir.last_checkpoint_step() or 0
    release_requeued(job_id)
    assert wait_run(run) == 0, rundir.log_path.read_text()[-3000:]
    assert rundir.read_status().state == SUCCEEDED and sacct(job_id)[0] == "COMPLETED"
    log = rundir.log_path.read_text()
    assert f"Slurm job {job_id} requeued, attempt 2" in log
    attempt_1 = [json.loads(line)["step"] for line in (run / "metrics.attempt-1.jsonl").read_text().splitlines()]
    attempt_2 = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert attempt_1[0] == 1 and max(attempt_1) >= done_before
    # the second attempt starts after a checkpoint the first one made, and runs every later step once
    resumed_from = attempt_2[0] - 1
    assert resumed_from >= done_before and resumed_from % 2 == 0, (attempt_1, attempt_2)
    assert sorted(set(attempt_2)) == list(range(resumed_from + 1, 7)), attempt_2
    import wandb_offline

    wandb_id = (run / "wandb_id.txt").read_text().strip()
    files = sorted((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 2 and all(f.name == f"run-{wandb_id}.wandb" for f in files)
    assert wandb_offline.run_ids(files[-1]) == {wandb_id}  # the attempt that finished
    # the killed attempt may not have flushed its records: what it did write names the same run
    assert all(wandb_offline.run_ids(f) <= {wandb_id} for f in files)
    for path in run.rglob("*"):
        if path.is_file() and path.suffix != ".wandb":
            assert secret.encode() not in path.read_bytes(), path
    assert os.environ.get("WANDB_API_KEY") is None
