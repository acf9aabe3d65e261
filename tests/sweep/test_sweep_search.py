"""An Optuna search from a sweep file (`search:`) through Hydra's Optuna sweeper and our launcher plugin: trials in
batches of n_jobs, each scored by the objective read from its metrics, pruned trials (stopped by a diagnostics
rule) scored NaN and marked; bad search settings refused before anything runs. Training is a formula here
(sweep_double.Scored); tests/e2e/test_sweep_e2e.py searches with real training."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from sweep_double import Scored, batches_fixture  # noqa: F401 - the `batches` fixture (autouse)
from trainer_platform import pipeline
from trainer_platform.entry import main
from trainer_platform.sweep.summary import summarize_sweep

SEARCH = """base: [algorithm=sft, data=tiny_sft, compute=cpu, train.steps=2]
search:
  sampler: tpe
  seed: 6
  n_trials: 4
  n_jobs: 2
  params:
    algorithm.lr: tag(log, interval(1e-5, 1e-1))
  objective: {metric: val/loss, reduce: final, mode: min}
  prune_on: [grad_norm_explosion]
"""


@pytest.fixture
def scored(monkeypatch: pytest.MonkeyPatch) -> type[Scored]:
    Scored.batches = []
    monkeypatch.setattr(pipeline, "_launcher_class", lambda name: Scored)
    return Scored


def _file(tmp_path: Path, body: str) -> str:
    path = tmp_path / "search.yaml"
    path.write_text(body)
    return str(path)


def test_trials_run_in_batches_and_are_scored_by_their_metrics(tmp_path: Path, scored: Any) -> None:
    assert main(["-m", f"+sweep={_file(tmp_path, SEARCH)}", "name=s"]) == 0
    assert [len(b) for b in scored.batches] == [2, 2]  # n_trials=4 in batches of n_jobs=2, one submit each
    manifest = json.loads((tmp_path / "runs" / "s" / "sweep.json").read_text())
    assert manifest["sweeper"] == "optuna" and manifest["objective"]["metric"] == "val/loss"
    trials = manifest["runs"]
    assert [t["name"].split(",")[0] for t in trials] == [f"trial={i}" for i in range(4)]
    for trial in trials:
        lr = float(trial["values"]["algorithm.lr"])
        assert 1e-5 <= lr <= 1e-1
        if "pruned" in trial:
            assert lr > 1e-2 and trial["value"] is None and trial["state"] == "stopped"
        else:
            assert trial["value"] == pytest.approx((math.log10(lr) + 3) ** 2) and trial["state"] == "succeeded"
        # every trial carries the pruning rule as a stop action
        assert "diagnostics.rules.grad_norm_explosion.action=stop" in trial["overrides"]
    # the seed makes the sampler try both: trials scored, and trials the diagnostics rule stopped
    assert 0 < sum("pruned" in t for t in trials) < len(trials)
    summary = summarize_sweep(tmp_path / "runs" / "s")
    assert summary.objective.names == ("val/loss",)
    best = min((t for t in trials if t["value"] is not None), key=lambda t: t["value"])
    assert summary.best is not None and summary.best.name == best["name"]


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        (("n_jobs: 2", "n_job: 2"), ["search.n_job", "did you mean 'n_jobs'"]),
        (("[grad_norm_explosion]", "[grad_norm_explode]"), ["not a diagnostics rule", "grad_norm_explosion"]),
        (("tag(log, interval(1e-5, 1e-1))", "abc"), ["search.params.algorithm.lr", "is not a search space"]),
        (("algorithm.lr: tag", "algorithm.lrr: tag"), ["did you mean 'lr'"]),
        (("algorithm.lr: tag", "launcher.grace_s: tag"), ["cannot vary across a sweep"]),
        (("base: [", "seeds: [1]\nbase: ["), ["cannot go with grid, zip or seeds"]),
        (("metric: val/loss, ", ""), ["search.objective.metric", "Field required"]),
    ],
)
def test_bad_searches_are_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], scored: Any, change: tuple[str, str], needles: list[str]
) -> None:
    body = SEARCH.replace(*change)
    assert body != SEARCH
    assert main(["-m", f"+sweep={_file(tmp_path, body)}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    assert scored.batches == [] and not (tmp_path / "runs").exists()


def test_a_search_needs_a_launcher_that_waits(tmp_path: Path, capsys: pytest.CaptureFixture[str], batches: Any) -> None:
    assert main(["-m", f"+sweep={_file(tmp_path, SEARCH)}"]) == 2  # the detached double
    assert "launcher.wait" in capsys.readouterr().err and batches.batches == []


def test_command_line_lists_do_not_join_a_search(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], scored: Any
) -> None:
    assert main(["-m", f"+sweep={_file(tmp_path, SEARCH)}", "train.seed=1,2"]) == 2
    assert "add it to the file's search.params" in capsys.readouterr().err
    assert main(["-m", f"+sweep={_file(tmp_path, SEARCH)}", "algorithm.lr=0.1"]) == 2
    assert "searches" in capsys.readouterr().err
