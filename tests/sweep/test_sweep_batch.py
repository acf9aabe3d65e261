"""`python train.py -m ...` becomes ONE batch: every run composed and validated first, prepared into its own run dir
under run_root/<sweep>/ named by its swept values, then handed to a single `launcher.submit(jobs, run_dirs)`.

The launcher records each batch it is given (tests/sweep/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from sweep_double import batches_fixture  # noqa: F401 - the `batches` fixture (autouse)
from trainer_platform.entry import main

TINY = ["algorithm=sft", "data=tiny_sft", "compute=cpu", "train.steps=2"]


def test_a_grid_is_one_batch_in_named_run_dirs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], batches: Any
) -> None:
    args = ["-m", *TINY, "algorithm.lr=1e-5,2e-5", "train.seed=1,2", "name=lr-seed", "logger=wandb"]
    assert main(args) == 0
    names = [f"algorithm.lr={lr},train.seed={s}" for lr in ("1e-05", "2e-05") for s in (1, 2)]
    assert batches.batches == [names]  # one submit, all four jobs, in Hydra's order
    sweep_dir = tmp_path / "runs" / "lr-seed"
    assert sorted(p.name for p in sweep_dir.iterdir()) == sorted([*names, "sweep.json"])
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    assert manifest["axes"] == {"algorithm.lr": ["1e-05", "2e-05"], "train.seed": ["1", "2"]}
    assert manifest["launcher"]["name"] == "local" and manifest["sweeper"] == "grid"
    assert [r["name"] for r in manifest["runs"]] == names
    assert manifest["runs"][3]["values"] == {"algorithm.lr": "2e-05", "train.seed": "2"}
    spec = yaml.safe_load((sweep_dir / names[1] / "spec.yaml").read_text())
    assert spec["algorithm"]["lr"] == 1e-5 and spec["train"]["seed"] == 2 and spec["name"] == names[1]
    assert spec["logger"]["wandb"]["group"] == "lr-seed"  # the W&B group is the sweep
    job = json.loads((sweep_dir / names[1] / "job.json").read_text())
    assert job["env"]["WANDB_RUN_GROUP"] == "lr-seed"
    out = capsys.readouterr().out
    for name in names:
        assert f"run dir: {sweep_dir / name}" in out
    assert out.strip().splitlines()[-1] == f"sweep dir: {sweep_dir}"


def test_a_sweep_name_already_taken_gets_a_new_folder(tmp_path: Path, batches: Any) -> None:
    assert main(["-m", *TINY, "algorithm.lr=1e-5", "name=twice"]) == 0
    assert main(["-m", *TINY, "algorithm.lr=1e-5", "name=twice"]) == 0
    assert (tmp_path / "runs" / "twice-2" / "run" / "status.json").is_file()  # nothing swept: one run, "run"
    assert len(batches.batches) == 2


def test_a_failure_preparing_one_run_leaves_no_run_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], batches: Any
) -> None:
    batches.fail_render_for = "algorithm.lr=2e-05"
    assert main(["-m", *TINY, "algorithm.lr=1e-5,2e-5,3e-5", "name=broken"]) == 2
    assert "cannot render this run" in capsys.readouterr().err
    assert batches.batches == []  # nothing submitted
    runs = tmp_path / "runs"
    assert not runs.exists() or [p.name for p in runs.iterdir()] == [], list(runs.rglob("*"))


@pytest.mark.parametrize(
    ("swept", "needle"),
    [
        ("launcher=local,ssh", "one sweep per launcher"),
        ("launcher.grace_s=1,2", "one sweep per launcher"),
        ("name=a,b", "names the whole sweep"),
        ("dry_run=true,false", "whole sweep"),
    ],
)
def test_what_may_not_vary_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], swept: str, needle: str
) -> None:
    assert main(["-m", *TINY, "algorithm.lr=1e-5,2e-5", swept]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "cannot vary across a sweep" in err and needle in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_bad_value_anywhere_launches_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], batches: Any
) -> None:
    assert main(["-m", *TINY, "algorithm.lr=1e-5,abc"]) == 2
    assert "algorithm.lr" in capsys.readouterr().err and batches.batches == []
    assert list(tmp_path.iterdir()) == []


def test_a_dry_run_sweep_creates_no_run(tmp_path: Path, capsys: pytest.CaptureFixture[str], batches: Any) -> None:
    assert main(["-m", *TINY, "algorithm.lr=1e-5,2e-5", "name=dry", "dry_run=true"]) == 0
    out = capsys.readouterr().out
    assert out.count("trainer_platform dry run (nothing launched)") == 2
    assert "a real run would create " + str(tmp_path / "runs" / "dry" / "algorithm.lr=2e-05") in out
    assert batches.batches == [] and not list((tmp_path / "runs").rglob("status.json"))


def test_each_run_is_composed_once_and_each_config_tree_once_per_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batches: Any
) -> None:
    """The sweep's check, the batch and verl's schema check share their compositions: each run's config is
    composed once (and carried from the check to the batch), Hydra builds the run config's tree once and verl's
    once, whatever the number of runs; nothing falls back to a full compose per run."""
    from trainer_platform import compose, composer, verl_schema

    per_run: dict[tuple[str, ...], int] = {}
    trees: list[str] = []
    full: list[str] = []
    real_compose, real_build = compose.compose_config, composer.Composer._build
    real_hydra, real_verl = compose._hydra_compose, verl_schema.compose_verl_config

    def counted_compose(overrides: list[str], *args: Any, **kwargs: Any) -> Any:
        per_run[tuple(overrides)] = per_run.get(tuple(overrides), 0) + 1
        return real_compose(overrides, *args, **kwargs)

    def counted_build(self: Any, lines: list[str]) -> Any:
        trees.append(self.config_name)
        return real_build(self, lines)

    monkeypatch.setattr(compose, "compose_config", counted_compose)
    monkeypatch.setattr(composer.Composer, "_build", counted_build)
    monkeypatch.setattr(compose, "_hydra_compose", lambda *a: full.append("run") or real_hydra(*a))
    monkeypatch.setattr(verl_schema, "compose_verl_config", lambda *a: full.append("verl") or real_verl(*a))
    assert main(["-m", *TINY, "train.seed=1,2,3", "name=once"]) == 0
    assert batches.batches == [[f"train.seed={seed}" for seed in (1, 2, 3)]]
    assert per_run == {(*TINY, f"train.seed={seed}", "name=once"): 1 for seed in (1, 2, 3)}
    assert sorted(trees) == ["sft_trainer_engine", "train"] and full == []
