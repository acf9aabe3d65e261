"""The console over recorded run directories of real verl 0.9.1 runs (GRPO, SFT, DPO on the tiny model, CPU).

tests/console/runs/<kind>/ holds what those runs left: spec.yaml and job.json (trimmed to what the console reads),
metrics.jsonl and train.log (verl's pretty-printed config dump removed). A replay writes them into a fresh run dir
the way the job did, line by line, the metrics record of step N together with verl's `step:N -` console line.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from trainer_platform.console import follow_run, summary_text
from trainer_platform.console.follow import plain_line
from trainer_platform.console.logscan import LogScan, Tail, clean, warning_of
from trainer_platform.console.view import RunWatch
from trainer_platform.runs import RunDir

RECORDED = Path(__file__).parent / "runs"
T0 = datetime(2026, 12, 2, 0, 1, 10, tzinfo=timezone.utc).timestamp()
_STEP_LINE = re.compile(r"(?<![\w/])step:(\d+) - ")


class Clock:
    """A clock the test moves: starts 2 s after the run began preparing."""

    def __init__(self) -> None:
        self.now = T0 + 2.0

    def __call__(self) -> float:
        return self.now


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def new_run(tmp_path: Path, kind: str, **status: object) -> RunDir:
    """A run dir with the recorded run's spec, job and checkpoints, nothing logged yet, status `running`."""
    path = tmp_path / kind
    path.mkdir(parents=True)
    for name in ("spec.yaml", "job.json"):
        shutil.copy(RECORDED / kind / name, path / name)
    shutil.copytree(RECORDED / kind / "checkpoints", path / "checkpoints")
    data = {
        "state": "running",
        "created": _iso(T0 + 1),
        "started": _iso(T0 + 2),
        "phases": {"preparing": _iso(T0)},
        **status,
    }
    (path / "status.json").write_text(json.dumps(data))
    return RunDir.open(path)


def replay(run: RunDir, kind: str) -> Iterator[None]:
    """Append the recorded train.log to the run's one line at a time (metrics records with their step line),
    yielding after each line."""
    records: dict[int, list[str]] = {}
    for line in (RECORDED / kind / "metrics.jsonl").read_text().splitlines(keepends=True):
        records.setdefault(json.loads(line)["step"], []).append(line)
    with run.log_path.open("a") as log, run.metrics_path.open("a") as metrics:
        for line in (RECORDED / kind / "train.log").read_text().splitlines(keepends=True):
            log.write(line)
            log.flush()
            match = _STEP_LINE.search(clean(line))
            if match:
                metrics.writelines(records.pop(int(match.group(1)), []))
                metrics.flush()
            yield
        for lines in records.values():  # records without a console line (e.g. validation at the last step)
            metrics.writelines(lines)
        metrics.flush()
    yield


def finish(run: RunDir, at: float, state: str = "succeeded", exit_code: int = 0) -> None:
    run.write_status(state, exit_code=exit_code, finished=_iso(at))


def plain_replay(tmp_path: Path, kind: str) -> tuple[list[str], RunWatch, RunDir]:
    """Replay a recorded run under a RunWatch polled after every line, 1 s apart; the plain lines it shows."""
    run = new_run(tmp_path, kind)
    clock = Clock()
    watch = RunWatch(run, clock=clock)
    shown: list[str] = []
    for _ in replay(run, kind):
        clock.now += 1.0
        shown += [line for e in watch.poll() if (line := plain_line(watch, e)) is not None]
    finish(run, clock.now)
    shown += [line for e in watch.poll(final=True) if (line := plain_line(watch, e)) is not None]
    return shown, watch, run


def test_plain_lines_of_a_grpo_run_one_per_phase_and_one_short_line_per_step(tmp_path: Path) -> None:
    shown, watch, run = plain_replay(tmp_path, "grpo")
    assert shown == [
        "[0:00] preparing model and data",
        "[0:03] starting Ray",
        "[0:08] loading workers",
        "[1:30] training",
        "step 1/4  reward 0  kl 0  entropy 6.219  resp_len 31.85  pg_loss 0  grad_norm 0",
        "step 2/4  reward 0  kl 0  entropy 6.219  resp_len 31.3  pg_loss 0  grad_norm 0  ETA 0:10",
        "step 3/4  reward 0  kl 0  entropy 6.219  resp_len 31.75  pg_loss 0  grad_norm 0  ETA 0:05",
        "[2:50] saving checkpoint",
        "step 4/4  reward 0  kl 0  entropy 6.219  resp_len 31.25  pg_loss 0  grad_norm 0",
    ]
    assert all(len(line) < 100 for line in shown)
    # the times it saw each phase are recorded for the summary (start-up vs training)
    phases = run.read_status().extra["phases"]
    assert sorted(phases) == ["loading", "preparing", "saving", "starting", "training"]
    assert phases["training"] == _iso(T0 + 90)


def test_plain_lines_of_sft_and_dpo_runs(tmp_path: Path) -> None:
    sft, _, _ = plain_replay(tmp_path / "sft", "sft")
    assert sft == [
        "[0:00] preparing model and data",
        "[0:03] starting processes",
        "[0:20] loading workers",
        "[0:30] training",
        "step 1/3  loss 6.219  grad_norm 3.032  lr 0.0015",
        "step 2/3  loss 5.844  grad_norm 2.815  lr 5.00e-04  ETA 0:02",
        "step 3/3  loss 5.625  grad_norm 2.238  lr 0",
        "[0:37] saving checkpoint",
    ]
    dpo, _, _ = plain_replay(tmp_path / "dpo", "dpo")
    steps = [line for line in dpo if line.startswith("step")]
    assert steps[0].startswith("step 1/3  loss 0.6931  accuracy 0.125  margin 1.43e-07")
    assert [line.split("] ")[1] for line in dpo if line.startswith("[")] == [
        "preparing model and data",
        "starting processes",
        "loading workers",
        "training",
        "saving checkpoint",
    ]


def test_warnings_are_counted_once_each_across_processes_ranks_and_ray_repeats(tmp_path: Path) -> None:
    _, watch, _ = plain_replay(tmp_path, "grpo")
    raw = [clean(line) for line in (RECORDED / "grpo" / "train.log").read_text().splitlines()]
    threads = [line for line in raw if "target_num_threads 8 should not exceed" in line]
    expected = sum(int(m.group(1)) if (m := re.search(r"repeated (\d+)x", line)) else 1 for line in threads)
    message = "target_num_threads 8 should not exceed total physical CPU cores 2. Setting to 2."
    assert watch.log.warnings[message] == expected > 400
    assert len(watch.log.warnings) < 15  # hundreds of copies, a handful of distinct warnings
    # the two formats verl's processes print it in, with and without Ray's prefix and repeat count
    a = "\x1b[36m(SimpleStorageUnit pid=8022)\x1b[0m 2026-12-02 00:02:55,053 - WARNING - transfer_queue.utils.common - "
    b = "(TaskRunnerV1 pid=7796) WARNING:2026-12-02 00:02:55,028:"
    assert warning_of(a + message + " [repeated 21x across cluster]") == (message, 21)
    assert warning_of(b + message) == (message, 1)
    assert warning_of("  warnings.warn(f'x', stacklevel=1)") is None
    assert warning_of("ray init kwargs: {'NCCL_DEBUG': 'WARN'}") is None


def test_the_summary_of_a_finished_run(tmp_path: Path) -> None:
    run = new_run(tmp_path, "dpo")
    for _ in replay(run, "dpo"):
        pass
    run.write_status(phases={"preparing": _iso(T0), "training": _iso(T0 + 60)})
    finish(run, T0 + 110)
    (run.wandb_dir / "offline-run-20261202_000110-abc").mkdir(parents=True)
    text = summary_text(run)
    lines = text.splitlines()
    assert lines[0] == "run succeeded: 3/3 steps, wall time 1:50 (start-up 1:00, training 0:50)"
    assert "  accuracy   0.125 -> 0.75  (best 0.75 at step 3)" in lines
    assert "  loss       0.6931 -> 0.672  (best 0.672 at step 3)" in lines
    assert "  val_loss   0.678 -> 0.678" in lines
    assert f"last checkpoint: step 3 ({run.path}/checkpoints/global_step_3)" in lines
    assert lines[lines.index("next:") + 1 :] == [
        f"  resume:   trainer-platform resume {run.path} train.steps=6",
        f"  export:   trainer-platform export {run.path}",
        f"  W&B sync: wandb sync {run.wandb_dir}/offline-run-20261202_000110-abc",
        f"run dir: {run.path}",
    ]
    assert any(line.startswith("warnings: ") and "distinct" in line for line in lines)
    assert len(lines) < 25


def test_the_summary_of_a_failed_run_names_the_error_and_the_log(tmp_path: Path) -> None:
    run = new_run(tmp_path, "sft")
    run.log_path.write_text("Traceback (most recent call last):\n  File x\nRuntimeError: out of memory on rank 0\n")
    finish(run, T0 + 30, state="failed", exit_code=1)
    shutil.rmtree(run.checkpoints_dir)
    lines = summary_text(run).splitlines()
    assert lines[0] == "run failed: 0/3 steps, wall time 0:30, exit code 1"
    assert "last checkpoint: none" in lines
    assert "error: RuntimeError: out of memory on rank 0" in lines
    assert f"  log:    trainer-platform logs {run.path}" in lines
    assert not any("export" in line for line in lines)


def test_follow_run_renders_until_the_run_ends_and_reads_only_the_run_dir(tmp_path: Path) -> None:
    run = new_run(tmp_path, "sft")

    def job() -> None:
        for _ in replay(run, "sft"):
            pass
        finish(run, T0 + 40)

    writer = threading.Thread(target=job)
    out = io.StringIO()
    writer.start()
    status = follow_run(run, out=out, live=False, poll_s=0.01)
    writer.join()
    assert status.state == "succeeded"
    text = out.getvalue()
    assert "starting processes" in text and "step 3/3  loss 5.625" in text and "training" in text
    assert "step:1 -" not in text  # verl's own lines stay in train.log


def test_verbose_shows_train_log_live(tmp_path: Path) -> None:
    run = new_run(tmp_path, "dpo")
    for _ in replay(run, "dpo"):
        pass
    finish(run, T0 + 40)
    out = io.StringIO()
    follow_run(run, out=out, live=False, verbose=True)
    log = run.log_path.read_text()
    text = out.getvalue()
    assert all(line in text for line in log.splitlines())
    assert "step 1/3  loss 0.6931" in text


def test_a_finished_run_is_only_read(tmp_path: Path) -> None:
    run = new_run(tmp_path, "grpo")
    for _ in replay(run, "grpo"):
        pass
    finish(run, T0 + 100)
    before = run.status_path.read_text()
    lines = io.StringIO()
    follow_run(run, out=lines, live=False)
    assert run.status_path.read_text() == before
    assert "[-] starting Ray" in lines.getvalue()  # seen afterwards: no time is made up
    assert "ETA" not in lines.getvalue()


def test_tail_reads_only_what_was_added(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    tail = Tail(path)
    assert tail.read() == []
    path.write_text('{"step": 1}\n{"step"')
    assert tail.read() == ['{"step": 1}']
    with path.open("r+") as f:  # rewrite what was read already, in place: a tail never reads it again
        f.write('{"step": 9}')
    with path.open("a") as f:
        f.write(": 2}\n")
    assert tail.read() == ['{"step": 2}']
    path.unlink()
    path.write_text('{"step": 1}\n')  # a new file (a resumed attempt): read from its start
    assert tail.read() == ['{"step": 1}']
    with path.open("a") as f:
        f.write("no newline at the end")
    assert tail.read() == [] and tail.rest() == ["no newline at the end"]


def test_the_live_display_on_a_terminal(tmp_path: Path) -> None:
    pty = pytest.importorskip("pty")
    run = new_run(tmp_path, "grpo")
    for _ in replay(run, "grpo"):
        pass
    finish(run, T0 + 100)
    master, slave = pty.openpty()
    os.set_blocking(master, True)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    with open(slave, "w", closefd=True) as tty:
        assert tty.isatty()
        follow_run(run, out=tty)  # live=None: a terminal gets the live display
    reader.join(timeout=5)
    os.close(master)
    text = b"".join(chunks).decode("utf-8", errors="replace")
    assert "\x1b[" in text  # rich drew it
    assert "step 4/4" in text and "ETA" in text
    assert "reward" in text and "entropy" in text and "6.219" in text
    assert "warnings (" in text and "target_num_threads" in text
    assert text.count("target_num_threads 8 should not exceed") <= 4  # once per redraw, not once per copy


def test_a_log_line_without_warning_words_is_no_warning() -> None:
    scan = LogScan()
    scan.feed(["step:1 - actor/entropy:6.2", "Training Progress:  25%"])
    assert not scan.warnings and scan.phase == "training"


def test_show_while_returns_what_wait_returns_even_when_the_display_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trainer_platform.console import show_while

    run = new_run(tmp_path, "sft")

    def wait() -> int:  # the job runs and ends while the display follows it
        for _ in replay(run, "sft"):
            pass
        finish(run, T0 + 40)
        return 0

    out = io.StringIO()
    assert show_while(run, wait, out=out) == 0
    assert "step 3/3" in out.getvalue()

    broken = new_run(tmp_path / "b", "sft")
    broken.status_path.write_text("not json")
    assert show_while(broken, lambda: 7, out=io.StringIO()) == 7
    assert "the console stopped" in capsys.readouterr().err
