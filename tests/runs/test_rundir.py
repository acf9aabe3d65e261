"""The run directory: all-or-nothing creation, unique names under concurrency, status, metrics, W&B id, handle."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from trainer_platform.runs import (
    CANCELLED,
    PENDING,
    RUNNING,
    SUCCEEDED,
    NotARunDirError,
    RunDir,
    RunDirError,
    list_runs,
    new_wandb_run_id,
)
from trainer_platform.runs import record as record_mod
from trainer_platform.runs import rundir as rundir_mod

REPO_ROOT = Path(__file__).resolve().parents[2]
FILES: dict[str, str | bytes] = {
    "spec.yaml": "a: 1\n",
    "job.json": "{}\n",
    "launch.sh": "#!/bin/sh\necho hi\n",
    "conf/extra.txt": b"\x00x",
}


def _make(root: Path, name: str = "run", files: dict[str, str | bytes] | None = None) -> RunDir:
    run = RunDir.allocate(root, name)
    run.create(FILES if files is None else files, argv=["train.py", "x=1"])
    return run


def _visible(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))


def test_create_writes_files_record_and_pending_status(tmp_path: Path) -> None:
    run = _make(tmp_path)
    assert run.path == tmp_path / "run"
    assert run.spec_path.read_text() == "a: 1\n"
    assert (run.path / "conf" / "extra.txt").read_bytes() == b"\x00x"
    assert run.launch_script.stat().st_mode & stat.S_IXUSR
    assert not run.spec_path.stat().st_mode & stat.S_IXUSR
    status = run.read_status()
    assert status.state == PENDING and status.created and status.exit_code is None
    rec = run.read_record()
    assert rec["argv"] == ["train.py", "x=1"]
    assert set(rec["versions"]) >= {"verl", "torch", "transformers", "ray", "trainer-platform"}
    assert rec["python"]["version"] and rec["host"]
    assert not (tmp_path / ".staging").exists()  # no staging leftovers, not even the empty folder
    assert [r.path for r in list_runs(tmp_path)] == [run.path]


def test_allocate_appends_suffix_when_taken(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()  # anything already there, run dir or not, is never reused
    assert _make(tmp_path).name == "run-2"
    assert _make(tmp_path).name == "run-3"
    assert _make(tmp_path, "other").name == "other"


@pytest.mark.parametrize("name", ["", "a/b", ".hidden"])
def test_allocate_rejects_bad_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="invalid run name"):
        RunDir.allocate(tmp_path, name)


def test_failure_inside_create_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(record_mod, "collect", boom)
    run = RunDir.allocate(tmp_path, "run")
    with pytest.raises(RuntimeError, match="disk on fire"):
        run.create(FILES)
    assert _visible(tmp_path) == []
    assert not (tmp_path / ".staging").exists()  # no staging leftovers, not even the empty folder
    monkeypatch.undo()
    assert _make(tmp_path).name == "run"  # the name was released


@pytest.mark.parametrize("bad", ["../escape", "/abs", "status.json", "record.json"])
def test_create_rejects_bad_file_names(tmp_path: Path, bad: str) -> None:
    run = RunDir.allocate(tmp_path, "run")
    with pytest.raises(ValueError):
        run.create({"spec.yaml": "ok", bad: "x"})
    assert _visible(tmp_path) == []
    assert not (tmp_path.parent / "escape").exists()


def test_create_twice_is_refused(tmp_path: Path) -> None:
    run = _make(tmp_path)
    with pytest.raises(RunDirError, match="fresh RunDir"):
        run.create(FILES)


def test_crash_before_create_leaves_no_run(tmp_path: Path) -> None:
    code = (
        "import os; from pathlib import Path; from trainer_platform.runs import RunDir\n"
        f"RunDir.allocate(Path({str(tmp_path)!r}), 'run'); os._exit(9)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=False).returncode == 9
    assert _visible(tmp_path) == []
    assert list_runs(tmp_path) == []


def test_concurrent_allocate_from_threads(tmp_path: Path) -> None:
    barrier = threading.Barrier(12)

    def one(_: int) -> Path:
        barrier.wait()
        return _make(tmp_path, "sweep", {"spec.yaml": "x"}).path

    with ThreadPoolExecutor(12) as pool:
        paths = list(pool.map(one, range(12)))
    assert len(set(paths)) == 12
    assert all(RunDir.is_run_dir(p) for p in paths)
    assert sorted(_visible(tmp_path)) == sorted(p.name for p in paths)


def test_concurrent_allocate_from_processes(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from trainer_platform.runs import RunDir\n"
        "for _ in range(3):\n"
        f"    r = RunDir.allocate(Path({str(tmp_path)!r}), 'sweep'); r.create({{'spec.yaml': 'x'}}); print(r.path)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    paths = [line for p in procs for line in p.communicate(timeout=120)[0].split()]
    assert all(p.returncode == 0 for p in procs)
    assert len(paths) == 12 and len(set(paths)) == 12
    assert len(list_runs(tmp_path)) == 12


def test_open_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(NotARunDirError, match=str(tmp_path / "missing")):
        RunDir.open(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotARunDirError, match=r"plain is not a run directory"):
        RunDir.open(tmp_path / "plain")
    run = _make(tmp_path)
    assert RunDir.open(run.path).path == run.path


def test_status_transitions(tmp_path: Path) -> None:
    run = _make(tmp_path)
    s = run.write_status(RUNNING, pid=123, host="h", launcher="local")
    assert s.state == RUNNING and s.started and s.finished is None and s.pid == 123 and s.extra["launcher"] == "local"
    s = run.write_status(SUCCEEDED, exit_code=0)
    assert s.terminal and s.finished and s.exit_code == 0 and s.pid == 123 and s.created
    assert s.duration_s() is not None and s.duration_s() >= 0  # type: ignore[operator]
    finished = s.finished
    s = run.write_status(CANCELLED)  # terminal -> terminal keeps the finish time
    assert s.finished == finished and s.exit_code == 0
    s = run.write_status(RUNNING, pid=456)  # a resume: a new attempt
    assert s.finished is None and s.exit_code is None and s.pid == 456
    s = run.write_status(RUNNING, launcher=None)  # None drops a launcher field
    assert "launcher" not in s.extra and "launcher" not in json.loads(run.status_path.read_text())
    assert run.read_status() == s
    with pytest.raises(ValueError, match="allowed: pending, queued, running"):
        run.write_status("exploded")


def test_status_file_is_replaced_atomically(tmp_path: Path) -> None:
    run = _make(tmp_path)
    stop = threading.Event()
    errors: list[Exception] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                run.read_status()
            except Exception as e:  # noqa: BLE001 - any torn read is the failure we look for
                errors.append(e)

    t = threading.Thread(target=reader)
    t.start()
    for i in range(200):
        run.write_status(RUNNING, step=i, padding="x" * (i * 50))
    stop.set()
    t.join()
    assert errors == []
    assert [p.name for p in run.path.iterdir() if p.name.endswith(".tmp")] == []


def test_read_metrics_tolerates_torn_last_line(tmp_path: Path) -> None:
    run = _make(tmp_path)
    assert run.read_metrics() == [] and run.latest_metrics() == (None, {})
    lines = [
        {"step": 1, "data": {"train/loss": 2.5, "lr": 1e-5}},
        {"step": 2, "data": {"train/loss": 2.0}},
        {"step": 2, "data": {"val/score": 0.5}},
    ]
    text = "".join(json.dumps(x) + "\n" for x in lines)
    run.metrics_path.write_text(text + '{"step": 3, "data": {"train/lo')
    assert run.read_metrics() == lines
    assert run.latest_metrics() == (2, {"train/loss": 2.0, "lr": 1e-5, "val/score": 0.5})


def test_read_metrics_warns_on_malformed_middle_line(tmp_path: Path) -> None:
    run = _make(tmp_path)
    run.metrics_path.write_text('{"step": 1, "data": {"a": 1}}\nnot json\n{"step": 2, "data": {"a": 2}}\n')
    with pytest.warns(UserWarning, match="metrics.jsonl:2"):
        records = run.read_metrics()
    assert [r["step"] for r in records] == [1, 2]


def test_last_checkpoint_step(tmp_path: Path) -> None:
    run = _make(tmp_path)
    assert run.last_checkpoint_step() is None
    run.checkpoints_dir.mkdir()
    marker = run.checkpoints_dir / "latest_checkpointed_iteration.txt"
    marker.write_text("7\n")
    assert run.last_checkpoint_step() == 7
    marker.write_text("garbage")
    assert run.last_checkpoint_step() is None


def test_wandb_run_id_made_once(tmp_path: Path) -> None:
    run = _make(tmp_path)
    assert run.wandb_run_id is None
    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(lambda _: run.ensure_wandb_run_id(), range(16)))
    assert len(ids) == 1
    (the_id,) = ids
    assert len(the_id) == 8 and the_id.isalnum() and the_id == run.wandb_run_id
    assert run.ensure_wandb_run_id() == the_id
    run.wandb_run_id = "fixed123"
    assert run.ensure_wandb_run_id() == "fixed123"
    assert new_wandb_run_id() != new_wandb_run_id()


def test_handle_roundtrip_and_update_files(tmp_path: Path) -> None:
    run = _make(tmp_path)
    assert run.load_handle() is None
    run.save_handle({"launcher": "local", "data": {"pid": 1}})
    assert run.load_handle() == {"launcher": "local", "data": {"pid": 1}}
    run.update_files({"spec.yaml": "a: 2\n", "launch.sh": "#!/bin/sh\n"})
    assert run.spec_path.read_text() == "a: 2\n" and run.launch_script.stat().st_mode & stat.S_IXUSR
    with pytest.raises(ValueError):
        run.update_files({"status.json": "{}"})


def test_iter_log_follow_until_done(tmp_path: Path) -> None:
    run = _make(tmp_path)
    assert list(run.iter_log()) == []
    done = threading.Event()

    def writer() -> None:
        with run.open_log() as log:
            for i in range(5):
                log.write(f"line {i}\n".encode())
            log.write(b"tail without newline")
        done.set()

    threading.Timer(0.3, writer).start()
    assert list(run.iter_log(follow=True, done=done.is_set, poll_s=0.05)) == [
        *[f"line {i}" for i in range(5)],
        "tail without newline",
    ]


def test_record_outside_git_and_inside(tmp_path: Path) -> None:
    prov = record_mod.collect(["x"], repo=tmp_path)
    assert prov.record["git"]["commit"] is None and prov.diff is None
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "f.txt").write_text("one\n")
    subprocess.run([*git, "add", "f.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    (tmp_path / "f.txt").write_text("two\n")
    (tmp_path / "new.txt").write_text("n\n")
    prov = record_mod.collect(["x"], repo=tmp_path)
    assert len(prov.record["git"]["commit"]) == 40 and prov.record["git"]["dirty"]
    assert "+two" in (prov.diff or "") and prov.record["git"]["untracked"] == ["new.txt"]


def test_create_writes_git_diff_when_dirty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record_mod, "git_state", lambda repo=None: ("abc", "diff --git a b\n", []))
    run = _make(tmp_path)
    assert (run.path / rundir_mod.DIFF_FILE).read_text() == "diff --git a b\n"
    assert run.read_record()["git"]["commit"] == "abc"


def test_management_modules_import_no_heavy_packages() -> None:
    code = (
        "import sys, trainer_platform.runs, trainer_platform.cli, launchers.base, launchers.local\n"
        "print(sorted(m for m in ('torch', 'verl', 'ray', 'transformers', 'wandb') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_create_all_makes_a_batch_durable_at_once_and_takes_provenance_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep's run dirs: every file and folder is fsync'd before its run dir is renamed into place (one
    concurrent pass, not a temp file, fsync and rename per file), and git is asked once for the whole batch."""
    from trainer_platform.runs.create import NewRun

    synced: list[str] = []
    real_fsync = os.fsync
    renamed: list[str] = []
    real_rename = os.rename

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def rename(src: str | Path, dst: str | Path) -> None:
        assert set(_tree(Path(src))) <= set(synced)  # every file and folder of the run is on disk first
        renamed.append(str(dst))
        real_rename(src, dst)

    git_calls: list[object] = []
    real_git_state = record_mod.git_state
    monkeypatch.setattr(record_mod, "git_state", lambda *a: git_calls.append(a) or real_git_state(*a))
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    runs = [RunDir.allocate(tmp_path, f"r{i}") for i in range(3)]
    RunDir.create_all(
        [NewRun(run, FILES, ["train.py", f"seed={i}"], {"phases": {"p": "t"}}) for i, run in enumerate(runs)]
    )
    assert len(git_calls) == 1 and renamed == [str(run.path) for run in runs]
    for i, run in enumerate(runs):
        assert run.read_status().state == PENDING and run.read_status().extra["phases"] == {"p": "t"}
        assert run.read_record()["argv"] == ["train.py", f"seed={i}"]
        assert (run.path / "conf" / "extra.txt").read_bytes() == b"\x00x"
        assert os.access(run.path / "launch.sh", os.X_OK)
    assert _visible(tmp_path) == ["r0", "r1", "r2"] and not (tmp_path / ".staging").exists()


def _tree(folder: Path) -> list[str]:
    return [str(p) for p in [folder, *folder.rglob("*")]]


def test_create_all_is_all_or_none(tmp_path: Path) -> None:
    from trainer_platform.runs.create import NewRun

    runs = [RunDir.allocate(tmp_path, f"r{i}") for i in range(3)]
    batch = [NewRun(run, FILES if i < 2 else {**FILES, "../escape": "x"}) for i, run in enumerate(runs)]
    with pytest.raises(ValueError, match="relative paths inside the run dir"):
        RunDir.create_all(batch)
    assert _visible(tmp_path) == [] and not (tmp_path / ".staging").exists()
    assert _make(tmp_path, "r0").name == "r0"  # the names were released
