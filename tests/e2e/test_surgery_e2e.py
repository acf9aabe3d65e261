"""Surgery around real trainings: pick a run's best checkpoint (FSDP -> HF through verl's merger), then train from
the average of its checkpoints with `python train.py surgery=average ...`; the run dir links the lineage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT, run_dir_of, run_train

pytestmark = pytest.mark.slow


def test_best_checkpoint_and_training_from_an_average(tmp_path: Path) -> None:
    first = run_dir_of(
        run_train("algorithm=sft", "data=tiny_sft", "name=src", "train.steps=2", "train.save_every=1", cwd=tmp_path)
    )
    assert sorted(p.name for p in (first / "checkpoints").glob("global_step_*")) == ["global_step_1", "global_step_2"]
    best = tmp_path / "best"
    res = subprocess.run(
        [sys.executable, "-m", "trainer_platform.cli", "surgery", "surgery=best",
         f"surgery.model='{first}@best=train/loss:min'", f"surgery.output={best}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(best)
    assert AutoTokenizer.from_pretrained(best).chat_template
    records = [json.loads(line) for line in (first / "metrics.jsonl").open() if line.strip()]
    losses = {r["step"]: r["data"]["train/loss"] for r in records if "train/loss" in r["data"]}
    picked = json.loads((best / "lineage.json").read_text())["steps"][0]["inputs"][0]["path"]
    assert f"global_step_{min(losses, key=losses.__getitem__)}" in picked

    second = run_dir_of(
        run_train("algorithm=sft", "data=tiny_sft", "name=avg", "surgery=average", f"surgery.run={first}",
                  "train.steps=1", cwd=tmp_path)
    )  # fmt: skip
    link = json.loads((second / "surgery.json").read_text())
    lineage = json.loads((second / "lineage.json").read_text())
    assert lineage["steps"][0]["op"] == "average" and len(lineage["steps"][0]["inputs"]) == 2
    job = json.loads((second / "job.json").read_text())
    assert any(link["model"] in arg for arg in job["argv"])
