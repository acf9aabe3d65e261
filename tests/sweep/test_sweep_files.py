"""Named sweep files (`python train.py -m +sweep=NAME`): grid, zipped axes and seeds expand into the right runs;
every problem in a file is one clear message naming the file and the field (exit 2, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sweep_double import REAL_LOOKUP, batches_fixture  # noqa: F401 - the `batches` fixture (autouse)
from trainer_platform import pipeline
from trainer_platform.entry import main
from trainer_platform.paths import repo_root
from trainer_platform.sweep import plan_sweep

BASE = "base: [algorithm=sft, data=tiny_sft, compute=cpu, train.steps=2]\n"


def _file(tmp_path: Path, body: str) -> str:
    path = tmp_path / "my_sweep.yaml"
    path.write_text(body)
    return str(path)


def test_grid_zip_and_seeds_make_every_combination(tmp_path: Path, batches: Any) -> None:
    body = BASE + (
        "grid:\n  algorithm.lr: [1.0e-4]\n"
        "zip:\n  - {algorithm.warmup_ratio: [0.0, 0.1], algorithm.weight_decay: [0.0, 0.01]}\n"
        "seeds: [1, 2]\n"
    )
    assert main(["-m", f"+sweep={_file(tmp_path, body)}", "name=g"]) == 0
    [batch] = batches.batches
    assert len(batch) == 1 * 2 * 2
    assert batch[:3] == [
        "algorithm.lr=0.0001,algorithm.warmup_ratio=0.0,algorithm.weight_decay=0.0,train.seed=1",
        "algorithm.lr=0.0001,algorithm.warmup_ratio=0.0,algorithm.weight_decay=0.0,train.seed=2",
        "algorithm.lr=0.0001,algorithm.warmup_ratio=0.1,algorithm.weight_decay=0.01,train.seed=1",
    ]
    manifest = json.loads((tmp_path / "runs" / "g" / "sweep.json").read_text())
    assert manifest["sweep_file"] == "my_sweep" and manifest["file"]["seeds"] == [1, 2]
    assert manifest["axes"]["algorithm.warmup_ratio"] == ["0.0", "0.1"] and manifest["axes"]["train.seed"] == ["1", "2"]


def test_the_command_line_adds_axes_and_wins_over_the_base(tmp_path: Path, batches: Any) -> None:
    body = BASE + "seeds: [7]\n"
    assert main(["-m", f"+sweep={_file(tmp_path, body)}", "train.steps=3", "algorithm.lr=1e-4,2e-4", "name=c"]) == 0
    assert batches.batches == [["algorithm.lr=0.0001,train.seed=7", "algorithm.lr=0.0002,train.seed=7"]]
    spec = (tmp_path / "runs" / "c" / "algorithm.lr=0.0001,train.seed=7" / "spec.yaml").read_text()
    assert "steps: 3" in spec


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        (
            BASE + "grid:\n  algorithm.lr: [1, 2]\nsead: [1]\n",
            ["sead", "is not a sweep file field", "did you mean 'seeds'"],
        ),
        (BASE + "zip:\n  - {algorithm.lr: [1, 2], train.steps: [1]}\n", ["zip[0]", "equally long"]),
        (BASE + "grid:\n  algorithm.lr: [1]\nzip:\n  - {algorithm.lr: [2]}\n", ["algorithm.lr is also swept in grid"]),
        (BASE + "grid:\n  train.seed: [1]\nseeds: [1, 2]\n", ["train.seed is also swept in grid"]),
        (BASE + "grid:\n  launcher: [local, ssh]\n", ["cannot vary across a sweep", "one sweep per launcher"]),
        (BASE + "seeds: [1, 1]\n", ["repeats a seed"]),
        (BASE, ["sweeps nothing"]),
        ("- a\n- b\n", ["does not hold a mapping"]),
        ("grid: [unclosed\n", ["is not readable YAML"]),
        (BASE + "grid:\n  algorithm.lr: [1.0e-4, abc]\n", ["algorithm.lr", "in the sweep run", "my_sweep.yaml"]),
        (BASE + "grid:\n  algorithm.lrr: [1.0e-4]\n", ["did you mean 'lr'"]),
        (BASE + "grid:\n  algorithm.lr: [[1, 2]]\n", ["grid.algorithm.lr"]),
        ("base: [algorithm]\nseeds: [1]\n", ["not a key=value override"]),
    ],
)
def test_bad_sweep_files_are_refused_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], batches: Any, body: str, needles: list[str]
) -> None:
    assert main(["-m", f"+sweep={_file(tmp_path, body)}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    assert batches.batches == [] and not (tmp_path / "runs").exists()


def test_unknown_names_and_misuse(tmp_path: Path, capsys: pytest.CaptureFixture[str], batches: Any) -> None:
    assert main(["-m", "+sweep=sft_lr_seed"]) == 2
    assert "did you mean 'sft_lr_seeds'" in capsys.readouterr().err
    assert main(["+sweep=sft_lr_seeds"]) == 2
    assert "needs -m" in capsys.readouterr().err
    body = BASE + "grid:\n  algorithm.lr: [1.0e-4]\n"
    assert main(["-m", f"+sweep={_file(tmp_path, body)}", "algorithm.lr=1e-3"]) == 2
    assert "sets a key that my_sweep.yaml sweeps" in capsys.readouterr().err
    assert batches.batches == []


@pytest.mark.parametrize("name", sorted(p.stem for p in (repo_root() / "sweeps").glob("*.yaml")))
def test_every_shipped_sweep_file_expands_and_validates(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "_launcher_class", REAL_LOOKUP)  # the launchers the files name, as they are
    session, hydra_overrides = plan_sweep([f"+sweep={name}"])
    assert session.sweep_file == name
    assert bool(hydra_overrides) == (session.planned is None)  # only a search goes through Hydra's multirun
    if session.planned is not None:
        assert len(session.planned) >= 2
        names = {",".join(f"{k}={v}" for k, v in session.values_of(run).items()) for run in session.planned}
        assert len(names) == len(session.planned)  # every run gets its own name


def test_there_are_at_least_two_real_examples() -> None:
    assert len(list((repo_root() / "sweeps").glob("*.yaml"))) >= 2
