"""A real tiny verl run stopped by a diagnostics rule: SFT on the tiny model, a checkpoint every step, and the loss
plateau rule set to fire at step 2 (any 2-step window "improves" by less than 1000%) with action stop. The monitor
beside the job stops it; the run ends `stopped` with the reason, its checkpoints stay, `diagnose` reports it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_train
from trainer_platform.cli.app import main
from trainer_platform.runs import STOPPED, RunDir

pytestmark = pytest.mark.slow

STOP_AT_STEP_2 = (
    "diagnostics.poll_s=0.2",
    "diagnostics.rules.loss_plateau.window=2",
    "diagnostics.rules.loss_plateau.min_rel_improvement=10.0",
    "diagnostics.rules.loss_plateau.action=stop",
)


def test_a_stop_rule_stops_a_real_run_keeping_its_checkpoint(tmp_path: Path) -> None:
    res = run_train(
        "algorithm=sft",
        "data=tiny_sft",
        "name=stopped",
        "train.steps=400",
        "train.save_every=1",
        *STOP_AT_STEP_2,
        cwd=tmp_path,
        check=False,
    )
    run = RunDir.open(tmp_path / "runs" / "stopped")
    status = run.read_status()
    assert status.state == STOPPED and res.returncode != 0, res.stdout[-3000:] + res.stderr[-3000:]
    reason = status.extra["stop_reason"]
    assert (reason["rule"], reason["metric"], reason["step"]) == ("loss_plateau", "train/loss", 2)
    steps = [r["step"] for r in run.read_metrics()]
    assert 2 in steps and max(steps) < 400
    kept = run.last_checkpoint_step()
    assert kept is not None and kept >= 1 and (run.checkpoints_dir / f"global_step_{kept}").is_dir()
    records = [json.loads(line) for line in (run.path / "diagnostics.jsonl").read_text().splitlines()]
    assert [(r["rule"], r["step"], r["action"]) for r in records] == [("loss_plateau", 2, "stop")]
    assert "run stopped" in res.stdout
    assert main(["diagnose", str(run.path)]) == 1
