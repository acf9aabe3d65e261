"""The tiny SFT run end to end on a real Ray head on loopback, through train.py, without a shared folder
(launcher.remote_dir unset: Ray's working directory, removed with the job, is the run dir there). train.py returns
after submit; the test waits for the end through the Job API alone, so the first process that looks at the run dir
afterwards is `trainer-platform status` in a new process: it must find every metrics step, the final state and exit
code and the checkpoint's location in the job's log, and `logs`, `show` and `report` must work from the run dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray_service

from conftest import REPO_ROOT, run_dir_of, run_train
from launchers.base import handle_of
from launchers.ray import sync_back
from trainer_platform.cli import main
from trainer_platform.runs import RunDir


def _cli_in_a_new_process(*args: str) -> str:
    res = subprocess.run(
        [sys.executable, "-m", "trainer_platform.cli", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "COLUMNS": "400"},  # long paths on one line
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res.stdout


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert main(list(args)) == 0
    return capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_tiny_sft_on_ray_comes_back_through_the_job_log(
    ray_head: ray_service.RayHead, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ray.job_submission import JobStatus, JobSubmissionClient

    res = run_train(
        "algorithm=sft",
        "data=tiny_sft",
        "train.steps=2",
        "launcher=ray",
        f"launcher.address={ray_head.address}",
        f"launcher.python={sys.executable}",
        f"run_root={tmp_path / 'runs'}",
        cwd=tmp_path,
    )
    run = run_dir_of(res)
    handle = json.loads((run / "handle.json").read_text())["data"]
    assert handle["run_dir_on_cluster"] == "" and handle["sync_tag"]
    client = JobSubmissionClient(ray_head.address)
    deadline = time.monotonic() + 500
    while client.get_job_status(handle["job_id"]) not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
        assert time.monotonic() < deadline, "the Ray job did not end"
        time.sleep(1)
    assert json.loads((run / "status.json").read_text())["state"] == "queued"  # nobody has looked since submit
    assert not (run / "metrics.jsonl").exists()

    out = _cli_in_a_new_process("status", str(run))
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "succeeded" and status["exit_code"] == 0, out
    assert "succeeded" in out and "step 2" in out
    host, _, where = status["remote_checkpoints"].partition(":")
    assert host and where.endswith("/checkpoints") and str(run) not in where  # on the cluster, in Ray's working dir
    assert f"step 2 ({status['remote_checkpoints']})" in out
    assert (run / "checkpoints" / "latest_checkpointed_iteration.txt").read_text().strip() == "2"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in records if any(k.startswith("train/") for k in r["data"])]
    assert train_steps == [1, 2], records  # every step, once
    log = (run / "train.log").read_text()
    assert "[tp-sync" not in log and "Creating file logger" in log  # verl's own output, our records taken out
    synced = {name: (run / name).read_bytes() for name in ("train.log", "metrics.jsonl", "status.json")}
    handle_obj = handle_of(RunDir.open(run))
    sync_back(handle_obj, JobSubmissionClient(ray_head.address), ended=True)  # the whole log read again
    assert {name: (run / name).read_bytes() for name in synced} == synced  # nothing added twice

    assert _cli(capsys, "logs", str(run)).splitlines() == log.splitlines()
    assert "step 2" in _cli(capsys, "show", str(run))
    _cli(capsys, "report", str(run))
    assert "train/loss" in (run / "report.html").read_text()
