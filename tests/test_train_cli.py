"""train.py as a user runs it: dry runs, bad input (exit 2, one clear message, nothing launched or written)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT, run_train


def train(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_train(*args, cwd=cwd, env=env, timeout=300, check=False)


def _run_dirs(root: Path) -> list[Path]:
    return [p for p in (root / "runs").glob("*") if p.is_dir() and not p.name.startswith(".")] if root.exists() else []


def test_dry_run_of_the_issue_example(tmp_path: Path, gsm8k_dir: Path) -> None:
    res = train(
        "algorithm=grpo",
        "model=qwen2_5_7b",
        "data=gsm8k",
        "compute=8xh100",
        "dry_run=true",
        f"data.dir={gsm8k_dir}",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "python -m verl.trainer.main_ppo" in out and "actor_rollout_ref.rollout.name=vllm" in out
    assert "algorithm.adv_estimator=grpo" in out and "actor_rollout_ref.actor.use_kl_loss=True" in out
    assert "batch arithmetic:" in out and "sequences per step         5120" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("dry run files: ")
    files = Path(last.removeprefix("dry run files: "))
    assert files.parent == tmp_path / "runs" / ".dry-runs"
    assert (files / "spec.yaml").is_file() and (files / "launch.sh").is_file()
    assert not (files / "status.json").exists() and _run_dirs(tmp_path) == []
    assert "exec env " in (files / "launch.sh").read_text()


def test_dry_run_imports_neither_torch_nor_ray(tmp_path: Path) -> None:
    script = str(REPO_ROOT / "train.py")
    probe = (
        f"import sys, runpy; sys.argv = [{script!r}, 'dry_run=true', 'algorithm=ppo', 'data=tiny_math']\n"
        f"try:\n    runpy.run_path({script!r}, run_name='__main__')\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "bad = [m for m in ('torch', 'ray', 'verl', 'transformers') if m in sys.modules]\n"
        "assert not bad, bad\nprint('clean')\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "clean" in res.stdout, res.stdout + res.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["algorithm=grpoo"], "did you mean 'grpo'"),
        (["model=qwen2_5_7"], "no model option named"),
        (["algorithm.klcoef=1"], "unknown key"),
        (["algorithm=grpo", "data=tiny_sft"], "trains on prompts data"),
        (["algorithm=grpo", "data=tiny_math", "algorithm.mini_batch_size=3"], "not a multiple of mini_batch_size"),
        (["algorithm=grpo", "data=gsm8k", "data.dir=/nonexistent/gsm8k"], "/nonexistent/gsm8k/train.parquet"),
        (["model.path=/nonexistent/model", "model.builtin=null"], "does not exist"),
        (["algorithm.lr=-1"], "algorithm.lr"),
        (["launcher.name=slurmm"], "no launcher named 'slurmm'"),
        (["verl.trainer.no_such_key=1"], "verl's config rejects it"),
        (["resume=true"], "resume=true needs the run to continue"),
        (["resume=true", "resume_dir=/nonexistent/run"], "no such directory"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(tmp_path: Path, args: list[str], needle: str) -> None:
    res = train(*args, cwd=tmp_path)
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert needle in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and res.stderr.startswith("error: ")
    assert _run_dirs(tmp_path) == []


def test_help(tmp_path: Path) -> None:
    res = train("--help", cwd=tmp_path)
    assert res.returncode == 0 and "dry_run=true" in res.stdout


@pytest.mark.parametrize("experiment", ["grpo_qwen2_5_7b_gsm8k", "ppo_qwen2_5_3b_gsm8k", "gspo_qwen3_8b_gsm8k"])
def test_named_experiments_dry_run(tmp_path: Path, gsm8k_dir: Path, experiment: str) -> None:
    res = train(f"+experiment={experiment}", "dry_run=true", cwd=tmp_path, env={"GSM8K_DIR": str(gsm8k_dir)})
    assert res.returncode == 0, res.stderr
    assert "python -m verl.trainer.main_ppo" in res.stdout and "WANDB_RUN_ID=" in res.stdout


def test_multi_node_compute_needs_a_multi_node_launcher(tmp_path: Path) -> None:
    res = train("compute=2x8xh100", "algorithm=sft", "data=tiny_sft", "algorithm.batch_size=256", cwd=tmp_path)
    assert res.returncode == 2 and "spans 2 nodes" in res.stderr and _run_dirs(tmp_path) == []


def test_a_dry_run_is_not_listed_as_a_run(tmp_path: Path) -> None:
    assert train("dry_run=true", "name=dry", cwd=tmp_path).returncode == 0
    res = subprocess.run(
        [sys.executable, "-m", "trainer_platform.cli", "list", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0 and "no runs under" in res.stdout, res.stdout
