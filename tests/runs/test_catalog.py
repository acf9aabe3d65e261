"""The runs index (runs/catalog.py) and `trainer-platform runs`/`list`: summaries from real recorded run dirs and
synthetic ones, the cache kept true to the run dirs (status, metrics, checkpoints, new and removed runs), concurrent
writers, filters and their bad values."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from synthetic_runs import age_files, recorded_run, write_run

from trainer_platform.cli import main
from trainer_platform.runs import RunDir
from trainer_platform.runs import catalog as catalog_module
from trainer_platform.runs.catalog import INDEX_FILE, ScanStats, catalog

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run root: the three recorded runs (grpo, sft, dpo) and a 3-run lr sweep; files aged so the index trusts
    them (see test_recent_changes_are_not_trusted for the rule)."""
    monkeypatch.setattr(catalog_module, "RACY_S", 0.0)
    base = tmp_path / "runs"
    for i, kind in enumerate(("grpo", "sft", "dpo")):
        recorded_run(base, kind, created=f"2026-11-30T0{i}:00:00+00:00")
    for i, lr in enumerate((1e-5, 3e-5, 1e-4)):
        write_run(base, f"lr-sweep/lr={lr}", spec_values={"algorithm.lr": lr}, created=f"2026-12-01T1{i}:00:00+00:00")
    return base


def names(root: Path, **kw: object) -> list[str]:
    return [s.name for s in catalog(root, **kw)]  # type: ignore[arg-type]


def test_summaries_of_recorded_and_sweep_runs(root: Path) -> None:
    runs = {s.name: s for s in catalog(root)}
    assert list(runs) == ["lr-sweep/lr=0.0001", "lr-sweep/lr=3e-05", "lr-sweep/lr=1e-05", "dpo", "sft", "grpo"]
    grpo, sft, dpo = runs["grpo"], runs["sft"], runs["dpo"]
    assert (grpo.kind, grpo.algorithm, grpo.step, grpo.target_steps, grpo.checkpoint) == ("rl", "grpo", 4, 4, 4)
    assert grpo.metric == "reward" and grpo.metric_last == 0.0
    last_loss = [json.loads(x) for x in (root / "sft" / "metrics.jsonl").read_text().splitlines()][2]["data"]
    assert sft.metric == "loss" and sft.metric_last == last_loss["train/loss"] and sft.target_steps == 3
    assert dpo.metric == "loss" and dpo.metric_best is not None and dpo.metric_best <= dpo.metric_last  # type: ignore[operator]
    swept = runs["lr-sweep/lr=0.0001"]
    assert (swept.sweep, swept.model, swept.data, swept.state, swept.step) == (
        "lr-sweep",
        "tiny",
        "tiny_math",
        "succeeded",
        20,
    )
    assert swept.metric_best is not None and swept.metric_best >= swept.metric_last  # type: ignore[operator]


def test_index_answers_unchanged_runs_and_rereads_changed_ones(root: Path) -> None:
    first = ScanStats()
    catalog(root, stats=first)
    assert (first.runs, first.read, first.saved) == (6, 6, True) and (root / INDEX_FILE).is_file()
    warm = ScanStats()
    assert names(root, stats=warm) == names(root, use_index=False) and (warm.read, warm.saved) == (0, False)

    run = RunDir.open(root / "lr-sweep" / "lr=1e-05")
    run.write_status("failed", exit_code=3)  # status: atomic replace
    with run.metrics_path.open("a") as f:  # metrics: appended in place, as verl's file logger does
        f.write(json.dumps({"step": 21, "data": {"critic/rewards/mean": 0.987}}) + "\n")
    (run.checkpoints_dir / "latest_checkpointed_iteration.txt").write_text("21")
    shutil.rmtree(root / "sft")
    write_run(root, "late", created="2026-12-02T00:00:00+00:00")
    stats = ScanStats()
    runs = {s.name: s for s in catalog(root, stats=stats)}
    assert stats.read == 2 and stats.saved  # the changed run and the new one; sft dropped out
    changed = runs["lr-sweep/lr=1e-05"]
    assert (changed.state, changed.exit_code, changed.step, changed.metric_last, changed.checkpoint) == (
        "failed", 3, 21, 0.987, 21,
    )  # fmt: skip
    assert "sft" not in runs and next(iter(runs)) == "late"
    assert [s.to_dict() for s in catalog(root)] == [s.to_dict() for s in catalog(root, use_index=False)]


def test_corrupt_or_foreign_index_is_rebuilt(root: Path) -> None:
    truth = [s.to_dict() for s in catalog(root, use_index=False)]
    for junk in (
        b"{not json",
        b"[]",
        json.dumps({"version": 999, "runs": {}}).encode(),
        b'{"version": 1, "runs": {"grpo": 7}}',
    ):
        (root / INDEX_FILE).write_bytes(junk)
        assert [s.to_dict() for s in catalog(root)] == truth
        assert json.loads((root / INDEX_FILE).read_text())["version"] == catalog_module.INDEX_VERSION


def test_recent_changes_are_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file written within RACY_S of the index may change again inside the same timestamp tick with the same size
    (a status rewrite): such a summary is read again next time instead of being trusted."""
    monkeypatch.setattr(catalog_module, "RACY_S", 3600.0)
    write_run(tmp_path, "fresh", created="2026-12-01T10:00:00+00:00")
    os.utime(tmp_path / "fresh" / "status.json")  # now
    catalog(tmp_path)
    stats = ScanStats()
    catalog(tmp_path, stats=stats)
    assert stats.read == 1
    age_files(tmp_path / "fresh", "2026-12-01T10:00:00+00:00")
    monkeypatch.setattr(catalog_module, "RACY_S", 2.0)
    catalog(tmp_path)
    stats = ScanStats()
    catalog(tmp_path, stats=stats)
    assert stats.read == 0


def test_unreadable_run_dir_is_a_row_not_a_failure(root: Path) -> None:
    (root / "grpo" / "status.json").write_text("{torn")
    runs = {s.name: s for s in catalog(root)}
    assert runs["grpo"].state == "unreadable" and "status.json" in (runs["grpo"].error or "")
    assert len(runs) == 6


def _hammer(root: str, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        catalog(Path(root))


def test_concurrent_writers_keep_the_index_valid_and_true(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four processes refresh the index while this one changes runs under them: every read of the index file is
    whole JSON, and afterwards the index answers exactly what reading every run dir says. With the real racy
    window: a summary read while its run was changing (here a metrics line appended after a finished status) is
    not trusted later (failed once with the window off)."""
    monkeypatch.setattr(catalog_module, "RACY_S", 2.0)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_hammer, args=(str(root), 3.0)) for _ in range(4)]
    for p in procs:
        p.start()
    states = ["running", "failed", "succeeded", "cancelled"]
    run = RunDir.open(root / "lr-sweep" / "lr=3e-05")
    i = 0
    while any(p.is_alive() for p in procs):
        run.write_status(states[i % len(states)])
        with run.metrics_path.open("a") as f:
            f.write(json.dumps({"step": 100 + i, "data": {"critic/rewards/mean": i / 1000}}) + "\n")
        if (root / INDEX_FILE).exists():
            assert json.loads((root / INDEX_FILE).read_bytes())["version"] == 1
        i += 1
        time.sleep(0.01)
    assert all(p.exitcode == 0 for p in procs) and i > 10
    # the index may hold a summary written by a process that read before the last change; it must not be used
    assert [s.to_dict() for s in catalog(root)] == [s.to_dict() for s in catalog(root, use_index=False)]
    assert next(s for s in catalog(root) if s.name.endswith("3e-05")).step == 100 + i - 1


def cli(*args: str, cols: int = 200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainer_platform.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": str(cols)},
    )


def test_runs_filters_and_json(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def listed(*args: str) -> list[str]:
        assert main(["runs", str(root), "--json", *args]) == 0
        return [r["name"] for r in json.loads(capsys.readouterr().out)]

    everything = listed()
    assert everything == names(root)
    assert listed("--algorithm", "sft") == ["sft"]
    assert listed("--algorithm", "rl") == [n for n in everything if n.startswith("lr-sweep")] + ["grpo"]
    assert listed("--sweep", "lr-*", "--name", "*1e-05") == ["lr-sweep/lr=1e-05"]
    assert listed("--model", "tiny") == [n for n in everything if n.startswith("lr-sweep")]
    assert listed("--since", "2026-12-01T11:00", "--until", "2026-12-01") == ["lr-sweep/lr=0.0001", "lr-sweep/lr=3e-05"]
    assert listed("--until", "2026-11-30T00:30") == ["grpo"]
    RunDir.open(root / "dpo").write_status("cancelled")
    assert listed("--status", "cancelled,failed") == ["dpo"]
    assert listed("--limit", "2") == everything[:2]
    res = cli("runs", str(root), "--json", "--name", "grpo")  # a real process: what a script sees on stdout
    one = json.loads(res.stdout)[0]
    assert one["path"] == str(root / "grpo") and one["target_steps"] == 4 and one["state"] == "succeeded"


def test_runs_table_newest_first_and_list_through_the_same_code(root: Path) -> None:
    res = cli("runs", str(root))
    assert res.returncode == 0, res.stderr
    body = res.stdout
    firsts = [line.split()[0] for line in body.splitlines()[3:]]
    assert firsts == ["lr-sweep/lr=0.0001", "lr-sweep/lr=3e-05", "lr-sweep/lr=1e-05", "dpo", "sft", "grpo"]
    assert "20/20" in body and "reward" in body and "tiny" in body
    short = cli("list", str(root), cols=80)
    assert short.returncode == 0 and max(map(len, short.stdout.splitlines())) <= 80
    assert "lr-sweep/lr=0.0001" in short.stdout and "loss" in short.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--status", "runing"], "--status 'runing' is not a run state; allowed: pending"),
        (["--since", "last tuesday"], "--since 'last tuesday' is not a date"),
        (["--limit", "0"], "--limit 0: give a positive number"),
    ],
)
def test_runs_bad_filters_exit_2(root: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", str(root), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_runs_missing_root_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()
