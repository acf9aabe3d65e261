"""`trainer-platform status|logs|cancel|list|resume` on real run dirs, and clean errors for bad paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from launchers.local import LocalLauncher
from trainer_platform.cli import main
from trainer_platform.job import VerlJob
from trainer_platform.runs import CANCELLED, PENDING, RUNNING, RunDir

REPO_ROOT = Path(__file__).resolve().parents[1]

# A job that logs like verl's file logger and leaves a checkpoint marker, in its cwd (the run dir).
TRAIN_JOB = """
import json, os
os.makedirs("checkpoints", exist_ok=True)
with open("metrics.jsonl", "w") as f:
    for step in (1, 2):
        f.write(json.dumps({"step": step, "data": {"train/loss": 1.0 / step, "train/lr": 1e-5}}) + "\\n")
with open("checkpoints/latest_checkpointed_iteration.txt", "w") as f:
    f.write("2")
print("training done")
"""


def _job(code: str) -> VerlJob:
    return VerlJob(entry_point="verl.trainer.fsdp_sft_trainer", argv=("python", "-c", code), env={"K": "[v]"})


def _run(root: Path, code: str, name: str = "run", wait: bool = True) -> RunDir:
    job = _job(code)
    run = RunDir.allocate(root, name)
    run.create({"job.json": json.dumps(job.to_dict()), "spec.yaml": "x: 1\n"})
    launcher = LocalLauncher(echo=False, grace_s=2.0)
    handle = launcher.submit([job], [run])[0]
    if wait:
        launcher.wait(handle)
    return run


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "trainer_platform.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)


@pytest.fixture
def finished_run(tmp_path: Path) -> RunDir:
    run = _run(tmp_path / "runs", TRAIN_JOB)
    run.wandb_run_id = "abcd1234"
    return run


def test_status_shows_state_metrics_checkpoint_and_command(
    finished_run: RunDir, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["status", str(finished_run.path)]) == 0
    out = capsys.readouterr().out
    for expected in ("succeeded", "exit code", "last metrics step", "train/loss", "0.5", "step 2", "abcd1234"):
        assert expected in out, expected
    assert "'K=[v]'" in out and "python -c" in out  # the command, brackets intact
    assert str(finished_run.path) in out


def test_status_and_summary_name_checkpoints_left_where_a_remote_job_ran(
    finished_run: RunDir, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a remote run (ssh, ray) showed the local checkpoints/ folder, which holds only the synced pointer."""
    from trainer_platform.console import summary_text

    monkeypatch.setenv("COLUMNS", "300")
    finished_run.write_status(remote_checkpoints="gpu1:/scratch/runs/r/checkpoints")
    assert main(["status", str(finished_run.path)]) == 0
    assert "step 2 (gpu1:/scratch/runs/r/checkpoints)" in capsys.readouterr().out
    assert "last checkpoint: step 2 (gpu1:/scratch/runs/r/checkpoints/global_step_2)" in summary_text(finished_run)


def test_list_shows_every_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "runs"
    _run(root, TRAIN_JOB, name="alpha")
    _run(root, "import sys; sys.exit(4)", name="beta")
    pending = RunDir.allocate(root / "sweep1", "gamma")
    pending.create({"spec.yaml": "x"})
    assert main(["list", str(root)]) == 0
    out = capsys.readouterr().out
    for expected in ("alpha", "beta", "gamma", "succeeded", "failed", PENDING):
        assert expected in out, expected


def test_list_defaults_to_runs_in_cwd(
    finished_run: RunDir, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(finished_run.path.parent.parent)
    assert main(["list"]) == 0
    assert finished_run.name in capsys.readouterr().out


def test_logs_prints_the_output(finished_run: RunDir, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logs", str(finished_run.path)]) == 0
    assert capsys.readouterr().out == "training done\n"
    assert main(["logs", "-f", str(finished_run.path)]) == 0  # ended: follow returns at once
    assert capsys.readouterr().out == "training done\n"


@pytest.mark.timeout(120)
def test_cancel_from_a_new_process_stops_the_run(tmp_path: Path) -> None:
    run = _run(tmp_path, "import time\nprint('started', flush=True)\ntime.sleep(300)", wait=False)
    deadline = time.monotonic() + 30
    while "started" not in (run.log_path.read_text() if run.log_path.exists() else ""):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert run.read_status().state == RUNNING
    result = _cli("cancel", str(run.path))
    assert result.returncode == 0, result.stderr
    assert "cancelled" in result.stdout
    assert run.read_status().state == CANCELLED
    again = _cli("cancel", str(run.path))
    assert again.returncode == 0 and "already cancelled" in again.stdout


def test_cancel_a_pending_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = RunDir.allocate(tmp_path, "waiting")
    run.create({"spec.yaml": "x"})
    assert main(["cancel", str(run.path)]) == 0
    assert run.read_status().state == CANCELLED


def test_resume_calls_the_pipeline(
    finished_run: RunDir, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[Path, list[str] | None]] = []

    def resume_run(run_dir: Path, overrides: list[str] | None = None) -> int:
        calls.append((run_dir, overrides))
        return 7

    monkeypatch.setitem(sys.modules, "trainer_platform.pipeline", types.SimpleNamespace(resume_run=resume_run))
    assert main(["resume", str(finished_run.path)]) == 7
    assert main(["resume", str(finished_run.path), "train.steps=9"]) == 7
    assert calls == [(finished_run.path, None), (finished_run.path, ["train.steps=9"])]


@pytest.mark.parametrize("command", ["status", "logs", "cancel", "resume"])
def test_bad_paths_give_one_clear_line(tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no_such_run"
    assert main([command, str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "Traceback" not in err and err.count("\n") == 1
    plain = tmp_path / "plain_folder"
    plain.mkdir()
    assert main([command, str(plain)]) == 2
    err = capsys.readouterr().err
    assert str(plain) in err and "not a run directory" in err and "Traceback" not in err


def test_errors_from_a_real_process(tmp_path: Path) -> None:
    result = _cli("status", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert str(tmp_path / "nope") in result.stderr and "Traceback" not in result.stderr
    result = _cli("list", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "nowhere" in result.stderr and "Traceback" not in result.stderr
    assert _cli("bogus").returncode == 2  # argparse usage error


def test_broken_files_are_reported_cleanly(
    finished_run: RunDir, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    finished_run.job_path.write_text("{}")
    assert main(["status", str(finished_run.path)]) == 0  # the rest of the status is still shown
    out = capsys.readouterr().out
    assert "succeeded" in out and "job.json is not a valid job" in out
    finished_run.status_path.write_text("{not json")
    assert main(["status", str(finished_run.path)]) == 2
    err = capsys.readouterr().err
    assert "status.json is unreadable" in err and "Traceback" not in err


# verl under Ray colours its prefixes, and progress bars redraw themselves with carriage returns
NOISY_JOB = r"""
import sys
for i in range(5):
    print(f"\x1b[36m(TaskRunner pid=1)\x1b[0m line {i}")
print("Epoch 1:  10%|#  | 1/10\rEpoch 1: 100%|###| 10/10")
"""


def test_logs_tail_and_no_escapes_into_a_pipe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run(tmp_path, NOISY_JOB)
    assert main(["logs", str(run.path), "--tail", "2"]) == 0
    assert capsys.readouterr().out == "(TaskRunner pid=1) line 4\nEpoch 1: 100%|###| 10/10\n"
    assert main(["logs", "-f", "-n", "1", str(run.path)]) == 0  # ended: the tail, then nothing more
    assert capsys.readouterr().out == "Epoch 1: 100%|###| 10/10\n"
    assert main(["logs", str(run.path)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 6 and "\x1b" not in out and "\r" not in out
    assert "\x1b[36m" in run.log_path.read_text()  # the log itself is untouched
    assert main(["logs", str(run.path), "--tail", "x"]) == 2


def test_tail_then_follow_skips_what_was_shown() -> None:
    from trainer_platform.cli.cmd_logs import tail_then_follow

    assert list(tail_then_follow(["a", "b", "c"], iter(["a", "b", "c", "d", "e"]), 2)) == ["b", "c", "d", "e"]
    assert list(tail_then_follow(["a"], None, 0)) == []


def test_list_fits_80_columns_with_target_steps_and_main_metric(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    job = _job(TRAIN_JOB)
    run = RunDir.allocate(root, "a-rather-long-run-name-20261202-000000")
    job = VerlJob(entry_point=job.entry_point, argv=(*job.argv, "trainer.total_training_steps=2"), env={})
    run.create({"job.json": json.dumps(job.to_dict()), "spec.yaml": "x: 1\n"})
    launcher = LocalLauncher(echo=False, grace_s=2.0)
    launcher.wait(launcher.submit([job], [run])[0])
    res = subprocess.run(
        [sys.executable, "-m", "trainer_platform.cli", "list", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "80"},
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, res.stdout
    assert "2/2" in res.stdout and "loss 0.5" in res.stdout and "succeeded" in res.stdout
    assert "a-rather-long-run-name" in res.stdout.replace("\n", "")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("trainer-platform ") and "verl 0.9.1" in out


def test_presets_list_every_option_with_its_description(capsys: pytest.CaptureFixture[str]) -> None:
    from trainer_platform.compose import GROUPS, file_description, group_options

    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for group in GROUPS:
        for option in group_options(group):
            assert f"{option:<22} {file_description(REPO_ROOT / 'conf' / group / f'{option}.yaml')}" in out
    assert main(["presets", "model"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("model (default: tiny)") and "qwen2_5_7b" in out and "grpo" not in out
    assert main(["presets", "modle"]) == 2
    assert "did you mean 'model'" in capsys.readouterr().err


def test_every_command_module_has_the_interface() -> None:
    from trainer_platform.cli.app import command_modules

    modules = command_modules()
    assert {m.NAME for m in modules} >= {"status", "logs", "cancel", "list", "resume", "export", "presets"}
    for module in modules:
        assert module.HELP and callable(module.add_arguments) and callable(module.run), module.__name__
