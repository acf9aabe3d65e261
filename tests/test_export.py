"""`trainer-platform export`: which folder of verl's checkpoint layouts the merger reads, and the clear exit-2 errors
checked before anything is written (the real merge, load and generate: tests/e2e/test_export_e2e.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer_platform.cli import main
from trainer_platform.export import ExportError, plan_export
from trainer_platform.runs import RunDir


def _checkpoint(folder: Path) -> None:
    """The files verl 0.9.1's FSDP checkpoint manager writes (names only; the merge itself is tested end to end)."""
    (folder / "huggingface").mkdir(parents=True)
    for name in ("fsdp_config.json", "model_world_size_1_rank_0.pt", "huggingface/config.json"):
        (folder / name).write_text("{}")


def _run(tmp_path: Path, steps: tuple[int, ...] = (), *, actor: bool = False, latest: int | None = None) -> RunDir:
    run = RunDir.allocate(tmp_path / "runs", "r")
    run.create({"spec.yaml": "x: 1\n"})
    for step in steps:
        step_dir = run.checkpoints_dir / f"global_step_{step}"
        _checkpoint(step_dir / "actor" if actor else step_dir)
    if latest is not None:
        (run.checkpoints_dir / "latest_checkpointed_iteration.txt").write_text(str(latest))
    return run


def test_engine_trainer_layout_defaults_to_the_last_step(tmp_path: Path) -> None:
    run = _run(tmp_path, (2, 4), latest=4)
    plan = plan_export(run)
    assert plan.step == 4 and plan.source == run.checkpoints_dir / "global_step_4"
    assert plan.out == run.path / "export" / "step-4"
    assert plan.command(Path("/t"))[1:7] == ["-m", "verl.model_merger", "merge", "--backend", "fsdp", "--local_dir"]


def test_rl_layout_exports_the_actor(tmp_path: Path) -> None:
    run = _run(tmp_path, (3,), actor=True, latest=3)
    (run.checkpoints_dir / "global_step_3" / "critic").mkdir()
    plan = plan_export(run, 3, tmp_path / "out")
    assert plan.source == run.checkpoints_dir / "global_step_3" / "actor"
    assert plan.out == (tmp_path / "out").absolute()


@pytest.mark.parametrize(
    ("steps", "latest", "args", "needle"),
    [
        ((), None, [], "has no checkpoint yet"),
        ((2, 4), 4, ["--step", "3"], "no checkpoint at step 3"),
        ((2,), None, [], "no complete checkpoint"),
    ],
)
def test_bad_requests_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    steps: tuple[int, ...],
    latest: int | None,
    args: list[str],
    needle: str,
) -> None:
    run = _run(tmp_path, steps, latest=latest)
    assert main(["export", str(run.path), *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and "hint:" in err and "Traceback" not in err
    assert not (run.path / "export").exists()


def test_output_folder_must_be_new_or_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run(tmp_path, (2,), latest=2)
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    assert main(["export", str(run.path), "--out", str(full)]) == 2
    assert "not empty" in capsys.readouterr().err and (full / "keep.txt").read_text() == "mine"
    afile = tmp_path / "afile"
    afile.write_text("")
    assert main(["export", str(run.path), "--out", str(afile)]) == 2
    assert "not a directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert plan_export(run, None, tmp_path / "empty").out == tmp_path / "empty"


def test_incomplete_and_foreign_checkpoints(tmp_path: Path) -> None:
    run = _run(tmp_path, (2,), latest=2)
    (run.checkpoints_dir / "global_step_2" / "model_world_size_1_rank_0.pt").unlink()
    with pytest.raises(ExportError, match="incomplete checkpoint: no model_world_size"):
        plan_export(run)
    (run.checkpoints_dir / "global_step_5" / "actor" / "model" / "dist_ckpt").mkdir(parents=True)
    with pytest.raises(ExportError, match="Megatron"):
        plan_export(run, 5)


def test_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(tmp_path / "nope")]) == 2
    assert "Traceback" not in capsys.readouterr().err
