"""A sweep end to end on this CPU machine: two tiny SFT runs through `python train.py -m`, run side by side by the
local launcher (launcher.max_parallel=2), in run dirs named by their swept values under the sweep dir, with the
manifest, then `trainer-platform sweep` naming the best run. Real verl, the tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT, run_train
from trainer_platform.runs import RunDir

pytestmark = pytest.mark.slow


def test_a_two_run_sweep_runs_side_by_side_and_says_which_won(tmp_path: Path) -> None:
    res = run_train(
        "-m",
        "algorithm=sft",
        "data=tiny_sft",
        "compute=cpu",
        "train.steps=2",
        "algorithm.lr=1e-4,1e-3",
        "launcher.max_parallel=2",
        "name=lr",
        cwd=tmp_path,
    )
    sweep = tmp_path / "runs" / "lr"
    assert res.stdout.strip().splitlines()[-1] == f"sweep dir: {sweep}"
    names = ["algorithm.lr=0.0001", "algorithm.lr=0.001"]
    assert sorted(p.name for p in sweep.iterdir()) == sorted([*names, "sweep.json"])
    manifest = json.loads((sweep / "sweep.json").read_text())
    assert [r["name"] for r in manifest["runs"]] == names and manifest["launcher"]["max_parallel"] == 2
    statuses = [RunDir.open(sweep / name).read_status() for name in names]
    assert all(s.state == "succeeded" for s in statuses), statuses
    # both ran at once: each started before the other finished
    a, b = statuses
    assert a.started and b.started and a.finished and b.finished
    assert a.started < b.finished and b.started < a.finished
    out = subprocess.run(
        [sys.executable, "-m", "trainer_platform.cli", "sweep", str(sweep), "--json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    summary = json.loads(out)
    assert summary["objective"]["metric"] == ["train/loss"] and summary["best"] in names
    values = {r["name"]: r["value"] for r in summary["runs"]}
    assert all(v is not None for v in values.values())
    assert summary["best"] == min(values, key=lambda n: values[n])
