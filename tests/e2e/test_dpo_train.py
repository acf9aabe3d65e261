"""End to end: the DPO trainer (verl/tp_dpo_trainer.py) under torchrun on CPU with the tiny model and tiny_pref.

One module-scoped training run of 8 steps (4 epochs of 32 pairs, so pairs are seen again), then a resume to step 10
from its checkpoint and a merge of the last checkpoint with verl's model merger.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from trainer_platform.data.tiny import ensure_tiny_dataset
from trainer_platform.models.tiny import ensure_tiny_model
from trainer_platform.paths import verl_ext_dir

pytestmark = pytest.mark.slow

TRAINER = verl_ext_dir() / "tp_dpo_trainer.py"
METRICS = [
    "train/loss",
    "train/rewards/chosen",
    "train/rewards/rejected",
    "train/rewards/margin",
    "train/rewards/accuracy",
    "train/lr",
    "train/grad_norm",
]


@dataclass(frozen=True)
class Setup:
    model: Path
    train: Path
    val: Path
    work: Path


def _run_dpo(setup: Setup, metrics_file: Path, steps: int, log: Path) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": str(verl_ext_dir()),
        "VERL_USE_EXTERNAL_MODULES": "tp_cpu_platform",
        "VERL_PLATFORM": "tp_cpu",
        "VERL_ENGINE_DEVICE": "cuda",
        "WANDB_MODE": "disabled",
        "VERL_FILE_LOGGER_PATH": str(metrics_file),
    }
    argv = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=1",
        str(TRAINER),
        f"model.path={setup.model}",
        f"data.train_files={setup.train}",
        f"data.val_files={setup.val}",
        "data.train_batch_size=16",
        "data.micro_batch_size_per_gpu=4",
        "data.use_dynamic_bsz=False",
        "data.max_length=128",
        "data.num_workers=0",
        "engine.strategy=fsdp2",
        "trainer.device=cpu",
        "model.use_remove_padding=False",
        "+model.override_config.attn_implementation=sdpa",
        "+engine.mixed_precision.param_dtype=fp32",
        "optim.lr=5e-3",
        "dpo.beta=0.1",
        "trainer.total_epochs=100",
        f"trainer.total_training_steps={steps}",
        "trainer.save_freq=4",
        "trainer.logger=[console,file]",
        f"trainer.default_local_dir={setup.work / 'ckpt'}",
    ]
    proc = subprocess.run(argv, cwd=setup.work, env=env, capture_output=True, text=True, timeout=900)
    log.write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, f"DPO run failed (log: {log}):\n{(proc.stdout + proc.stderr)[-4000:]}"
    return proc.stdout + proc.stderr


def _steps(metrics_file: Path, prefix: str = "train/") -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    for line in metrics_file.read_text().splitlines():
        record = json.loads(line)
        if any(k.startswith(prefix) for k in record["data"]):
            out[record["step"]] = record["data"]
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    cache = tmp_path_factory.mktemp("cache")
    data = ensure_tiny_dataset("pref", cache, n_train=32, n_val=16)
    work = tmp_path_factory.mktemp("dpo")
    return Setup(model=ensure_tiny_model(), train=data.train, val=data.val, work=work)  # the model: the session's


@pytest.fixture(scope="module")
def first_run(setup: Setup) -> dict[int, dict[str, float]]:
    _run_dpo(setup, setup.work / "run1.jsonl", steps=8, log=setup.work / "run1.log")
    return _steps(setup.work / "run1.jsonl")


def test_metrics_present_and_finite(first_run: dict[int, dict[str, float]], setup: Setup) -> None:
    assert sorted(first_run) == list(range(1, 9))
    for step, data in first_run.items():
        for key in METRICS:
            assert key in data, f"step {step} lacks {key}"
            assert math.isfinite(data[key]), f"step {step}: {key}={data[key]}"
    val = _steps(setup.work / "run1.jsonl", prefix="val/")
    assert 8 in val and math.isfinite(val[8]["val/loss"])


def test_preference_accuracy_and_margin_rise(first_run: dict[int, dict[str, float]]) -> None:
    start = first_run[1]
    # step 1 runs on the initial weights: the policy equals the (precomputed) reference
    assert abs(start["train/rewards/margin"]) < 1e-3
    assert start["train/loss"] == pytest.approx(math.log(2), abs=1e-3)
    last = [first_run[s] for s in (6, 7, 8)]
    accuracy = sum(d["train/rewards/accuracy"] for d in last) / len(last)
    margin = sum(d["train/rewards/margin"] for d in last) / len(last)
    assert accuracy >= 0.7 and accuracy > start["train/rewards/accuracy"]
    assert margin > start["train/rewards/margin"] + 0.05
    assert sum(d["train/loss"] for d in last) / len(last) < start["train/loss"] - 0.03


def test_checkpoint_layout(first_run: dict[int, dict[str, float]], setup: Setup) -> None:
    ckpt = setup.work / "ckpt"
    assert (ckpt / "latest_checkpointed_iteration.txt").read_text().strip() == "8"
    for step in (4, 8):
        assert (ckpt / f"global_step_{step}" / "model_world_size_1_rank_0.pt").is_file()
        assert (ckpt / f"global_step_{step}" / "huggingface" / "config.json").is_file()
    assert list((ckpt / "dpo_reference").glob("train-*.pt"))


def test_resume_continues_at_next_step_and_merges(first_run: dict[int, dict[str, float]], setup: Setup) -> None:
    output = _run_dpo(setup, setup.work / "run2.jsonl", steps=10, log=setup.work / "run2.log")
    assert "DPO reference log-probs for train (32 pairs): loaded from cache" in output
    resumed = _steps(setup.work / "run2.jsonl")
    assert sorted(resumed) == [9, 10]
    assert (setup.work / "ckpt" / "latest_checkpointed_iteration.txt").read_text().strip() == "10"

    target = setup.work / "merged"
    merge = subprocess.run(
        [
            sys.executable,
            "-m",
            "verl.model_merger",
            "merge",
            "--backend",
            "fsdp",
            "--local_dir",
            str(setup.work / "ckpt" / "global_step_10"),
            "--target_dir",
            str(target),
        ],
        cwd=setup.work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert merge.returncode == 0, merge.stderr[-3000:]
    import torch
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(target)
    initial = AutoModelForCausalLM.from_pretrained(setup.model)
    changed = [name for name, p in merged.state_dict().items() if not torch.equal(p, initial.state_dict()[name])]
    assert changed, "the merged model equals the initial model: training did not change the weights"
