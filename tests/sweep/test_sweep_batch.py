"""`python train.py -m ...` becomes ONE batch: every run composed and validated first, prepared into its own run dir
under run_root/<sweep>/ named by its swept values, then handed to a single `launcher.submit(jobs, run_dirs)`.

The launcher here records the batch it is given and leaves the jobs queued: it stands in for a cluster scheduler
(the local launcher really runs a sweep in tests/e2e/test_sweep_e2e.py; Slurm's array in the Slurm tests)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import yaml

from launchers.base import Handle
from launchers.local import LocalLauncher
from launchers.options import LocalOptions
from trainer_platform import pipeline
from trainer_platform.entry import main
from trainer_platform.errors import SpecError
from trainer_platform.job import VerlJob
from trainer_platform.runs import QUEUED, RunDir

TINY = ["algorithm=sft", "data=tiny_sft", "compute=cpu", "train.steps=2"]


class _Options(LocalOptions):
    """The local launcher's options (conf/launcher/local.yaml), detached: submit returns at once."""

    @classmethod
    def model_validate(cls, obj: object, **kwargs: object) -> _Options:  # type: ignore[override]
        return cls.model_construct(**{**dict(obj), "wait": False})  # type: ignore[call-overload]


class _Batches(LocalLauncher):
    """Records each batch handed to submit; the jobs stay queued (a scheduler that never starts them)."""

    batches: list[list[str]] = []
    fail_render_for: str | None = None
    Options = _Options  # type: ignore[assignment]

    def render(self, job: VerlJob, run_dir: RunDir) -> dict[str, str]:
        if self.fail_render_for and run_dir.name == self.fail_render_for:
            raise SpecError("launcher", "cannot render this run", "planted failure")
        return {}

    def submit(self, jobs: Sequence[VerlJob], run_dirs: Sequence[RunDir]) -> list[Handle]:  # type: ignore[override]
        type(self).batches.append([run.name for run in run_dirs])
        assert len(jobs) == len(run_dirs)
        handles = []
        for run in run_dirs:
            handle = Handle(launcher="local", run_dir=str(run.path), data={"job_id": f"{len(handles)}"})
            run.save_handle(handle.to_dict())
            run.write_status(QUEUED, launcher="local")
            handles.append(handle)
        return handles


@pytest.fixture(autouse=True)
def _batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Batches]]:
    monkeypatch.chdir(tmp_path)
    real = pipeline._launcher_class

    def lookup(name: str) -> type[_Batches]:
        real(name)  # unknown names are still refused
        return _Batches

    monkeypatch.setattr(pipeline, "_launcher_class", lookup)
    _Batches.batches = []
    _Batches.fail_render_for = None
    handlers, level = logging.root.handlers[:], logging.root.level  # Hydra's main configures logging
    yield _Batches
    logging.root.handlers[:], logging.root.level = handlers, level


def test_a_grid_is_one_batch_in_named_run_dirs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["-m", *TINY, "algorithm.lr=1e-5,2e-5", "train.seed=1,2", "name=lr-seed", "logger=wandb"]
    assert main(args) == 0
    names = [f"algorithm.lr={lr},train.seed={s}" for lr in ("1e-05", "2e-05") for s in (1, 2)]
    assert _Batches.batches == [names]  # one submit, all four jobs, in Hydra's order
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


def test_a_sweep_name_already_taken_gets_a_new_folder(tmp_path: Path) -> None:
    assert main(["-m", *TINY, "algorithm.lr=1e-5,2e-5", "name=twice"]) == 0
    assert main(["-m", *TINY, "algorithm.lr=1e-5,2e-5", "name=twice"]) == 0
    assert (tmp_path / "runs" / "twice-2" / "algorithm.lr=1e-05" / "status.json").is_file()
    assert len(_Batches.batches) == 2


def test_a_failure_preparing_one_run_leaves_no_run_behind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _Batches.fail_render_for = "algorithm.lr=2e-05"
    assert main(["-m", *TINY, "algorithm.lr=1e-5,2e-5,3e-5", "name=broken"]) == 2
    assert "cannot render this run" in capsys.readouterr().err
    assert _Batches.batches == []  # nothing submitted
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


def test_a_bad_value_anywhere_launches_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-m", *TINY, "algorithm.lr=1e-5,abc"]) == 2
    assert "algorithm.lr" in capsys.readouterr().err and _Batches.batches == []
    assert list(tmp_path.iterdir()) == []


def test_a_dry_run_sweep_creates_no_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-m", *TINY, "algorithm.lr=1e-5,2e-5", "name=dry", "dry_run=true"]) == 0
    out = capsys.readouterr().out
    assert out.count("trainer_platform dry run (nothing launched)") == 2
    assert "a real run would create " + str(tmp_path / "runs" / "dry" / "algorithm.lr=2e-05") in out
    assert _Batches.batches == [] and not list((tmp_path / "runs").rglob("status.json"))
