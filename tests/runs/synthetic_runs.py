"""Synthetic run directories for tests and benchmarks/bench_runs_index.py: the files a finished (or running) run
leaves, written directly (no training): status.json, spec.yaml (a real dry run's spec with values changed),
job.json, metrics.jsonl in verl's file-logger format with plausible curves, and verl's checkpoint marker.

These are test inputs, not a fake of any part of the platform: every reader under test reads them as it reads a
real run dir. The recorded runs of tests/console/runs (real verl output) are used next to them.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
# a real `python train.py dry_run=true` spec.yaml (GRPO on the tiny model), the base every synthetic spec edits
BASE_SPEC: dict[str, Any] = yaml.safe_load((HERE / "spec_grpo_tiny.yaml").read_text())
RECORDED = HERE.parent / "console" / "runs"


def set_key(spec: dict[str, Any], dotted: str, value: Any) -> None:
    node = spec
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def rl_metrics(step: int, lr: float, seed: int, *, total: int) -> dict[str, float]:
    """One step of plausible GRPO metrics under verl's names: reward rises faster with a larger lr."""
    rng = random.Random(seed * 1000 + step)
    progress = 1 - math.exp(-step * lr * 1e5 / max(total, 1))
    reward = 0.1 + 0.8 * progress + rng.uniform(-0.03, 0.03)
    return {
        "critic/rewards/mean": reward,
        "critic/score/mean": reward,
        "actor/pg_loss": -0.05 * reward + rng.uniform(-0.01, 0.01),
        "actor/kl_loss": 0.001 * step * lr * 1e4,
        "actor/entropy": 6.2 - 2.0 * progress,
        "actor/grad_norm": 0.5 + rng.uniform(0, 0.3),
        "actor/lr": lr,
        "response_length/mean": 24 + 4 * progress,
        "perf/throughput": 900 + rng.uniform(-50, 50),
        "timing_s/step": 2.0 + rng.uniform(-0.2, 0.2),
        "training/global_step": step,
    }


def write_run(
    root: Path,
    name: str,
    *,
    state: str = "succeeded",
    created: str = "2026-12-01T10:00:00+00:00",
    steps: int = 20,
    logged: int | None = None,
    spec_values: dict[str, Any] | None = None,
    seed: int = 0,
    checkpoint: int | None = None,
) -> Path:
    """A GRPO run dir `root/name` (name may hold a sweep folder: `sweep/run`) that logged `logged` (default: all)
    of its `steps` steps with the spec's lr; `spec_values` are dotted spec keys to change."""
    path = root / name
    path.mkdir(parents=True)
    spec = copy.deepcopy(BASE_SPEC)
    set_key(spec, "train.steps", steps)
    for key, value in (spec_values or {}).items():
        set_key(spec, key, value)
    (path / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    argv = ["-m", "verl.trainer.main_ppo", "trainer.total_epochs=1", f"trainer.total_training_steps={steps}"]
    (path / "job.json").write_text(json.dumps({"entry_point": "verl.trainer.main_ppo", "argv": argv, "env": {}}))
    logged = steps if logged is None else logged
    finished = None if state in ("running", "pending", "queued") else created
    status = {"state": state, "created": created, "started": created, "finished": finished, "launcher": "local"}
    if state in ("succeeded", "failed"):
        status["exit_code"] = 0 if state == "succeeded" else 1
    (path / "status.json").write_text(json.dumps(status))
    lr = float(spec["algorithm"]["lr"])
    with (path / "metrics.jsonl").open("w") as f:
        for step in range(1, logged + 1):
            f.write(json.dumps({"step": step, "data": rl_metrics(step, lr, seed, total=steps)}) + "\n")
    ckpt = logged if checkpoint is None else checkpoint
    if ckpt:
        (path / "checkpoints" / f"global_step_{ckpt}").mkdir(parents=True)
        (path / "checkpoints" / "latest_checkpointed_iteration.txt").write_text(str(ckpt))
    age_files(path, created)
    return path


def age_files(path: Path, when: str) -> None:
    """Give a run dir's files the modification time `when` (ISO), as a run written back then has."""
    stamp = datetime.fromisoformat(when).timestamp()
    for item in [*path.rglob("*"), path]:
        os.utime(item, (stamp, stamp))


def recorded_run(root: Path, kind: str, name: str | None = None, created: str = "2026-12-01T09:00:00+00:00") -> Path:
    """A copy of a recorded real run (tests/console/runs/<kind>: grpo, sft or dpo) made a finished run dir."""
    path = root / (name or kind)
    shutil.copytree(RECORDED / kind, path)
    status = {"state": "succeeded", "exit_code": 0, "created": created, "started": created, "finished": created}
    (path / "status.json").write_text(json.dumps({**status, "launcher": "local"}))
    age_files(path, created)
    return path
