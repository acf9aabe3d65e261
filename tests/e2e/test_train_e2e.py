"""`python train.py` end to end on this CPU machine: real verl, the tiny model, the run directory as the record."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_dir_of, run_train
from test_dpo_train import METRICS as DPO_METRICS

pytestmark = pytest.mark.slow


def train(*args: str, cwd: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_train(*args, cwd=cwd, env=extra_env)


def steps_with(run: Path, key: str) -> list[int]:
    from trainer_platform.runs import RunDir

    return [r["step"] for r in RunDir.open(run).read_metrics() if key in r["data"]]


def test_tiny_sft_trains_and_records_the_run(tmp_path: Path) -> None:
    res = train("algorithm=sft", "data=tiny_sft", "name=default", cwd=tmp_path)
    run = run_dir_of(res)
    assert run == tmp_path / "runs" / "default"
    # the console on a pipe: one line per phase, one short line per step, the summary; verl's output in train.log
    out = res.stdout.splitlines()
    assert len(out) < 40 and "step:1 -" not in res.stdout, res.stdout
    phases = [line.split("] ", 1)[1] for line in out if line.startswith("[")]
    assert phases == ["preparing model and data", "starting processes", "loading workers", "training"] + [
        "saving checkpoint"
    ] * (len(phases) - 4)
    assert [line.split("  ")[0] for line in out if line.startswith("step ")] == [f"step {i}/5" for i in range(1, 6)]
    assert out[-1] == f"run dir: {run}" and any(line.startswith("run succeeded: 5/5 steps, wall time") for line in out)
    assert f"  export: trainer-platform export {run}" in out
    assert steps_with(run, "train/loss") == [1, 2, 3, 4, 5]
    from trainer_platform.runs import RunDir

    rd = RunDir.open(run)
    losses = [r["data"]["train/loss"] for r in rd.read_metrics() if "train/loss" in r["data"]]
    assert all(loss == loss and loss < 100 for loss in losses) and losses[-1] < losses[0]
    assert rd.last_checkpoint_step() == 5 and (run / "checkpoints" / "global_step_5").is_dir()
    status = rd.read_status()
    assert status.state == "succeeded" and status.exit_code == 0
    record = rd.read_record()
    assert record["versions"]["verl"] == "0.9.1" and "torch" in record["versions"]
    assert (run / "train.log").read_text().count("train/loss") >= 5
    cli = subprocess.run(
        [sys.executable, "-m", "trainer_platform.cli", "status", str(run)], capture_output=True, text=True, timeout=60
    )
    assert cli.returncode == 0 and "succeeded" in cli.stdout


def test_resume_continues_from_the_last_checkpoint_into_the_same_wandb_run(tmp_path: Path) -> None:
    """Resume adds the missing steps to the same run dir (none rerun, verl's own lines live with verbose=true), and
    W&B offline logs both attempts into one W&B run; the API key never lands on disk."""
    import wandb_offline

    secret = "sk-test-secret-0123456789"
    env = {"WANDB_API_KEY": secret, "WANDB_MODE": ""}
    run = run_dir_of(
        train(
            "algorithm=sft",
            "data=tiny_sft",
            "name=wb",
            "logger=wandb",
            "logger.wandb.mode=offline",
            "train.steps=2",
            cwd=tmp_path,
            extra_env=env,
        )
    )
    run_id = (run / "wandb_id.txt").read_text().strip()
    files = sorted((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1 and files[0].name == f"run-{run_id}.wandb"
    rows = wandb_offline.history(files[0])
    assert [r["train/loss"] for r in rows if "train/loss" in r] and {r.get("_step") for r in rows} >= {1, 2}
    assert wandb_offline.run_ids(files[0]) == {run_id}
    res = train("resume=true", f"resume_dir={run}", "train.steps=3", "verbose=true", cwd=tmp_path, extra_env=env)
    assert run_dir_of(res) == run
    assert "step:3 -" in res.stdout and "step 3/3" in res.stdout  # verbose: verl's own lines live, and ours
    assert steps_with(run, "train/loss") == [1, 2, 3]  # step 3 added; 1-2 not rerun
    log = (run / "train.log").read_text()
    assert "global_step_2" in log and log.count("step:1 -") == 1
    from trainer_platform.runs import RunDir

    assert RunDir.open(run).last_checkpoint_step() == 3
    files = sorted((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 2 and all(f.name == f"run-{run_id}.wandb" for f in files)
    assert any(r.get("_step") == 3 for r in wandb_offline.history(files[-1]))
    for path in run.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert secret.encode() not in path.read_bytes(), f"secret leaked into {path}"


def test_dpo_through_train_py_trains_checkpoints_and_resumes(tmp_path: Path) -> None:
    import math

    from trainer_platform.runs import RunDir

    run = run_dir_of(train("algorithm=dpo", "data=tiny_pref", "name=dpo", "train.steps=2", cwd=tmp_path))
    rd = RunDir.open(run)
    train_records = [r for r in rd.read_metrics() if "train/loss" in r["data"]]
    assert [r["step"] for r in train_records] == [1, 2]
    for record in train_records:
        assert all(math.isfinite(float(record["data"][k])) for k in DPO_METRICS), record
    assert abs(train_records[0]["data"]["train/loss"] - math.log(2)) < 1e-3  # policy == reference at step 1
    assert rd.last_checkpoint_step() == 2
    train("resume=true", f"resume_dir={run}", "train.steps=3", cwd=tmp_path)
    assert steps_with(run, "train/rewards/margin") == [1, 2, 3]
    assert rd.last_checkpoint_step() == 3
