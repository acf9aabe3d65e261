"""`trainer-platform export` on real checkpoints of both of verl's layouts (engine trainer: SFT; RL trainer: actor/),
then load the result with transformers' Auto classes and generate."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DEFAULT_JOB_STEPS, REPO_ROOT

pytestmark = pytest.mark.slow


def _export(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    cmd = [sys.executable, "-m", "trainer_platform.cli", "export", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)


def _load_and_generate(folder: Path, base_model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    ids = tokenizer("1+2=", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] > ids["input_ids"].shape[1]
    assert isinstance(tokenizer.decode(out[0]), str)
    # the trained weights, not the starting model's
    base = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.bfloat16).state_dict()
    trained = model.to(torch.bfloat16).state_dict()
    assert base.keys() == trained.keys()
    assert any(not torch.equal(base[k], trained[k]) for k in base)


def _base_model(run: Path) -> Path:
    """The model the run started from: verl's `model.path` (SFT) or `actor_rollout_ref.model.path` (RL)."""
    from trainer_platform.runs import RunDir

    argv = RunDir.open(run).read_job().argv
    paths = [a.split("=", 1)[1] for a in argv if a.split("=", 1)[0] in ("model.path", "actor_rollout_ref.model.path")]
    assert len(paths) == 1, argv
    return Path(paths[0])


@pytest.mark.parametrize("layout", ["sft", "grpo"])
def test_export_loads_and_generates(layout: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    run: Path = request.getfixturevalue(f"{layout}_run")
    out = tmp_path / "hf"
    res = _export(str(run), "--out", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    step = DEFAULT_JOB_STEPS if layout == "grpo" else 2
    assert str(out) in res.stdout and f"exporting step {step} of" in res.stdout
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind
    _load_and_generate(out, _base_model(run))
    again = _export(str(run), "--out", str(out))
    assert again.returncode == 2 and "not empty" in again.stderr and "Traceback" not in again.stderr


def test_export_defaults_to_the_last_step_inside_the_run(sft_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(sft_run, run, ignore=shutil.ignore_patterns("export"))
    res = _export(str(run))
    assert res.returncode == 0, res.stdout + res.stderr
    assert (run / "export" / "step-2" / "model.safetensors").is_file()
