"""`trainer-platform show RUN` and `compare RUN RUN...` over recorded real runs and synthetic sweep runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synthetic_runs import recorded_run, write_run

from trainer_platform.cli import main
from trainer_platform.runs.series import at_step, best, curves, last
from trainer_platform.runs.specs import diff, flatten, swept_keys

PLAN = {
    "platform": "cpu", "accelerator": "cpu", "nnodes": 1, "gpus_per_node": 1, "rollout_engine": "hf", "rollout_tp": 1,
    "notes": ["compute=auto: no GPU found"],
    "memory": {"verdict": "yes", "peak_gib": 1.52, "capacity_gib": 23.54, "peak_phase": "actor update"},
}  # fmt: skip


def output(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 0
    return capsys.readouterr().out


def test_show_has_every_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    run = write_run(tmp_path, "a", spec_values={"algorithm.lr": 1e-4, "resume_dir": "/runs/older"}, steps=20, logged=12)
    (run / "plan.json").write_text(json.dumps(PLAN))
    (run / "handle.json").write_text(json.dumps({"launcher": "slurm", "run_dir": str(run), "data": {"job_id": "4242"}}))
    (run / "checkpoints" / "global_step_6").mkdir()
    lineage = {"format": 1, "output": "/models/merged", "created": "2026-12-01T00:00:00Z",
               "steps": [{"op": "linear", "inputs": [{"path": "/models/a"}, {"path": "/models/b"}]}]}  # fmt: skip
    (run / "lineage.json").write_text(json.dumps(lineage))
    (run / "surgery.json").write_text(json.dumps({"model": "/models/merged", "lineage": "/models/merged/lineage.json"}))
    text = output(capsys, "show", str(run))
    for expected in (
        "succeeded", "algorithm.lr", "0.0001", "12 of 20", "critic/rewards/mean", "saved steps      6, 12",
        "step 12", "1 node(s) x 1 cpu", "peak 1.52 GiB", "compute=auto: no GPU found", "slurm", "job_id", "4242",
        "resumed from", "/runs/older", "linear <- /models/a, /models/b", "/models/merged",
    ):  # fmt: skip
        assert expected in text, expected
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    rewards = {r["step"]: r["data"]["critic/rewards/mean"] for r in records}
    top = max(rewards, key=lambda s: rewards[s])
    assert f"@{top}" in text and "@12" in text


def test_show_recorded_dpo_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    text = output(capsys, "show", str(recorded_run(tmp_path, "dpo")))
    assert "train/rewards/accuracy" in text and "0.75 @3" in text and "never submitted" in text


def test_show_not_a_run_dir_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(tmp_path)]) == 2
    assert "is not a run directory" in capsys.readouterr().err


def test_spec_diff_orders_training_keys_first() -> None:
    a = {"name": "x", "run_root": "/r1", "logger": {"wandb": None}, "algorithm": {"lr": 1e-5, "kl_coef": 0.1},
         "model": {"name": "tiny"}, "train": {"seed": 1}}  # fmt: skip
    b = {"name": "y", "run_root": "/r2", "logger": {"wandb": {"project": "p"}},
         "algorithm": {"lr": 1e-4, "kl_coef": 0.1}, "model": {"name": "tiny"}, "train": {"seed": 2},
         "verl": {"trainer.foo": 1}}  # fmt: skip
    keys = [k for k, _ in diff([a, b])]
    assert keys == [
        "algorithm.lr",
        "train.seed",
        "verl.trainer.foo",
        "logger.wandb",
        "logger.wandb.project",
        "name",
        "run_root",
    ]
    assert swept_keys([a, b]) == ["algorithm.lr", "train.seed", "verl.trainer.foo"]
    assert flatten({"a": {"b": {}, "c": [1]}}) == {"a.b": {}, "a.c": [1]}


def test_series_last_best_at_step() -> None:
    records = [{"step": 1, "data": {"m": 1.0}}, {"step": 2, "data": {"m": float("nan")}},
               {"step": 3, "data": {"m": 0.5}}, {"step": 2, "data": {"m": 3.0, "flag": True}},
               {"data": {"m": 9.0}}]  # fmt: skip
    found = curves(records)
    assert found == {"m": {1: 1.0, 2: 3.0, 3: 0.5}}  # the later record of step 2 wins; bool and step-less skipped
    assert last(found["m"]) is not None and last(found["m"]).step == 3  # type: ignore[union-attr]
    assert best(found["m"], "max").step == 2 and best(found["m"], "min").value == 0.5  # type: ignore[union-attr]
    assert best(found["m"], None) is None and at_step({1: 1.0, 4: 2.0}, 3) == 1.0 and at_step({4: 2.0}, 3) is None


def test_compare_diff_and_metrics_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("COLUMNS", "200")
    slow = write_run(tmp_path, "sweep/lr=1e-05", spec_values={"algorithm.lr": 1e-5, "name": "slow"}, logged=8)
    fast = write_run(tmp_path, "sweep/lr=0.0001", spec_values={"algorithm.lr": 1e-4, "name": "fast"}, logged=20)
    text = output(capsys, "compare", str(slow), str(fast))
    lines = text.splitlines()
    lr_line = next(i for i, line in enumerate(lines) if "algorithm.lr" in line)
    name_line = next(i for i, line in enumerate(lines) if " name " in line and "slow" in line)
    assert lr_line < name_line and "1e-05" in lines[lr_line] and "0.0001" in lines[lr_line]
    assert "model.name" not in text  # identical keys are not listed by default
    assert "equal step: 8" in text and "@8" in text and "best (max)" in text
    assert "model.name" in output(capsys, "compare", str(slow), str(fast), "--all")
    assert "@5" in output(capsys, "compare", str(slow), str(fast), "--step", "5")


def test_compare_recorded_sft_and_dpo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    text = output(capsys, "compare", str(recorded_run(tmp_path, "sft")), str(recorded_run(tmp_path, "dpo")))
    assert "algorithm.name" in text and "val_loss" in text and "accuracy" in text


def test_compare_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path, "a")
    assert main(["compare", str(run)]) == 2
    assert "at least two run dirs" in capsys.readouterr().err
    assert main(["compare", str(run), str(tmp_path / "missing")]) == 2
    assert "no such directory" in capsys.readouterr().err
