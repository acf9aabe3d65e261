"""`trainer-platform sweep SWEEP_DIR` on sweep dirs laid out as train.py writes them (manifest, run dirs, verl's
metrics.jsonl records): each run's values, state and metric, the best run, each axis against the metric."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer_platform.cli import main as cli
from trainer_platform.runs import FAILED, STOPPED, SUCCEEDED, RunDir
from trainer_platform.sweep.manifest import write_manifest
from trainer_platform.sweep.objective import Objective
from trainer_platform.sweep.summary import summarize_sweep

SPEC = "algorithm:\n  name: sft\n  kind: sft\n"


def _run(sweep: Path, name: str, losses: list[float], state: str, val: float | None = None) -> None:
    run = RunDir.allocate(sweep, name)
    records = [{"step": i + 1, "data": {"train/loss": v}} for i, v in enumerate(losses)]
    if val is not None:
        records.append({"step": len(losses), "data": {"val/loss": val}})
    run.create({"spec.yaml": SPEC, "metrics.jsonl": "".join(json.dumps(r) + "\n" for r in records)})
    extra = {"stop_reason": {"rule": "non_finite", "step": 2, "message": "nan"}} if state == STOPPED else {}
    run.write_status(state, exit_code=0 if state == SUCCEEDED else 1, **extra)


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    folder = tmp_path / "runs" / "lr"
    folder.mkdir(parents=True)
    grid = [("1e-4", "1", [3.0, 2.0], 2.5), ("1e-4", "2", [3.0, 2.2], 2.4), ("1e-3", "1", [3.0, 1.0], 3.0)]
    runs = []
    for lr, seed, losses, val in grid:
        name = f"algorithm.lr={lr},train.seed={seed}"
        _run(folder, name, losses, SUCCEEDED, val)
        runs.append({"name": name, "values": {"algorithm.lr": lr, "train.seed": seed}})
    _run(folder, "algorithm.lr=1e-3,train.seed=2", [3.0, float("nan")], STOPPED)
    runs.append({"name": "algorithm.lr=1e-3,train.seed=2", "values": {"algorithm.lr": "1e-3", "train.seed": "2"}})
    _run(folder, "algorithm.lr=1e-2,train.seed=1", [], FAILED)
    runs.append({"name": "algorithm.lr=1e-2,train.seed=1", "values": {"algorithm.lr": "1e-2", "train.seed": "1"}})
    axes = {"algorithm.lr": ["1e-4", "1e-3", "1e-2"], "train.seed": ["1", "2"]}
    write_manifest(folder, {"name": "lr", "sweeper": "grid", "launcher": {"name": "local"}, "axes": axes, "runs": runs})
    return folder


def test_the_default_metric_is_the_algorithms_main_one(sweep: Path) -> None:
    summary = summarize_sweep(sweep)
    assert summary.objective.names == ("train/loss",) and summary.objective.mode == "min"
    values = {r.name: r.value for r in summary.runs}
    assert values["algorithm.lr=1e-3,train.seed=1"] == 1.0 and values["algorithm.lr=1e-2,train.seed=1"] is None
    assert values["algorithm.lr=1e-3,train.seed=2"] is None  # a NaN final value scores nothing
    assert summary.best is not None and summary.best.name == "algorithm.lr=1e-3,train.seed=1"
    lr = {a.value: a for a in summary.by_axis("algorithm.lr")}
    assert lr["1e-4"].runs == 2 and lr["1e-4"].mean == pytest.approx(2.1) and lr["1e-4"].best == 2.0
    assert lr["1e-3"].scored == 1 and lr["1e-2"].mean is None
    stopped = next(r for r in summary.runs if r.state == STOPPED)
    assert stopped.stop_reason == "non_finite at step 2"


def test_another_metric_reduction_and_direction(sweep: Path) -> None:
    summary = summarize_sweep(sweep, Objective(metric="val/loss", mode="min"))
    assert summary.best is not None and summary.best.name == "algorithm.lr=1e-4,train.seed=2"
    summary = summarize_sweep(sweep, Objective(metric="train/loss", reduce="best", mode="max"))
    assert summary.best is not None and summary.best.value == 3.0


def test_the_command_prints_the_table_the_best_run_and_the_axes(
    sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["sweep", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "sweep lr: 5 runs, grid, launcher local; metric: final loss (min)" in out
    assert "best: #3 (algorithm.lr=1e-3, train.seed=1)" in out
    assert "algorithm.lr vs loss" in out and "train.seed vs" in out
    assert "stopped early: algorithm.lr=1e-3,train.seed=2 by non_finite at step 2" in out
    assert cli(["sweep", str(sweep), "--metric", "val/loss", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["best"] == "algorithm.lr=1e-4,train.seed=2" and data["objective"]["metric"] == ["val/loss"]
    assert [a["value"] for a in data["axes"]["train.seed"]] == ["1", "2"]


def test_not_a_sweep_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["sweep", str(tmp_path)]) == 2
    assert "is not a sweep directory" in capsys.readouterr().err
    assert cli(["sweep", str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_report_writes_the_sweeps_html_through_the_report_command(
    sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["sweep", str(sweep), "--report"]) == 0
    assert "sweep report:" in capsys.readouterr().out.replace("\n", "")
    page = (sweep / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html") or page.lstrip().lower().startswith("<!doctype html")
    assert "algorithm.lr=1e-3,train.seed=1" in page  # the ranking names the runs
    assert cli(["sweep", str(sweep), "--json", "--report", str(tmp_path / "r.html")]) == 0
    assert json.loads(capsys.readouterr().out)["best"] and (tmp_path / "r.html").is_file()
