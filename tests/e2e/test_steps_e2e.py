"""train.steps is the number of optimizer steps run, across epochs, and the last step is checkpointed."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_dir_of, run_train
from trainer_platform.runs import RunDir

pytestmark = pytest.mark.slow

# 16 rows in batches of 8: two steps per epoch, so three steps need a second pass over the data
SMALL = ("data.builtin_rows.train=16", "data.builtin_rows.val=8", "algorithm.batch_size=8", "train.steps=3")


def _steps(run: Path, key: str) -> list[int]:
    return [r["step"] for r in RunDir.open(run).read_metrics() if key in r["data"]]


@pytest.mark.parametrize(
    ("kind", "args", "metric"),
    [
        ("sft", ("algorithm=sft", "data=tiny_sft", "algorithm.micro_batch_size_per_gpu=4"), "train/loss"),
        ("dpo", ("algorithm=dpo", "data=tiny_pref", "algorithm.micro_batch_size_per_gpu=4"), "train/loss"),
    ],
)
def test_steps_run_past_one_epoch_and_the_last_is_saved(
    kind: str, args: tuple[str, ...], metric: str, tmp_path: Path
) -> None:
    run = run_dir_of(run_train(*args, *SMALL, f"name={kind}", "train.save_every=100", cwd=tmp_path))
    assert _steps(run, metric) == [1, 2, 3]
    assert RunDir.open(run).last_checkpoint_step() == 3 and (run / "checkpoints" / "global_step_3").is_dir()
    assert RunDir.open(run).read_status().state == "succeeded"
