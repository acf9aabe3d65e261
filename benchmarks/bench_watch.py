"""`trainer-platform watch RUN`'s CPU cost on a running job: the share of one core it uses while the job trains.

A stand-in job appends real metrics lines (the default GRPO job's, recorded in tests/diagnostics/curves/, ~3.6 KB a
step, all ~170 metrics) to metrics.jsonl and log lines to train.log at a fixed pace, with a `running` status.json:
the watch does the same work as on a real run (read what is new, parse it, run the diagnostics rules, render),
without a verl job's own CPU noise. `watch` runs as a user runs it, in plain mode (stdout a pipe) and live mode (rich
on a pseudo-terminal). Its CPU time (utime + stime from /proc) is taken over a steady window after start-up
(imports are reported apart), and /proc/PID/io's rchar shows the bytes it read against the bytes the job appended
(about 1x: nothing is read twice). Target (issue 11): under 1% of one core.

Run: `.venv/bin/python benchmarks/bench_watch.py [--seconds 60] [--step-s 1.0] [--no-readme]`
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _timing import REPO_ROOT, load_average, machine, record_result, today

TARGET_PCT = 1.0
CURVE = REPO_ROOT / "tests" / "diagnostics" / "curves" / "grpo_default_job.jsonl"
TICK = os.sysconf("SC_CLK_TCK")


def make_run(root: Path, steps: int) -> Path:
    """A run dir as train.py makes it (spec.yaml, job.json with the RL diagnostics, status running)."""

    run = root / "run"
    run.mkdir()
    (run / "spec.yaml").write_text("algorithm: {name: grpo, kind: rl}\n")
    job = {"entry_point": "verl.trainer.main_ppo", "argv": ["python", f"trainer.total_training_steps={steps}"]}
    (run / "job.json").write_text(json.dumps(job))
    now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    (run / "status.json").write_text(json.dumps({"state": "running", "created": now, "started": now}))
    return run


def writer(run: Path, step_s: float, stop: threading.Event, appended: list[int]) -> None:
    """The stand-in job: one metrics line per `step_s` (the recorded curve, repeated), 20 log lines a second."""
    lines = CURVE.read_text().splitlines(keepends=True)
    step, next_step = 0, time.monotonic()
    with open(run / "metrics.jsonl", "a") as metrics, open(run / "train.log", "a") as log:
        while not stop.is_set():
            if time.monotonic() >= next_step:
                record = json.loads(lines[step % len(lines)])
                record["step"] = step + 1
                text = json.dumps(record) + "\n"
                metrics.write(text)
                metrics.flush()
                appended[0] += len(text)
                step, next_step = step + 1, next_step + step_s
            text = f"(WorkerDict pid=1234) step {step} some verl output line\n"
            log.write(text)
            log.flush()
            appended[0] += len(text)
            stop.wait(0.05)


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_rchar(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def measure(mode: str, seconds: float, step_s: float, warmup_s: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp:
        run = make_run(Path(tmp), steps=100000)
        stop, appended = threading.Event(), [0]
        job = threading.Thread(target=writer, args=(run, step_s, stop, appended), daemon=True)
        job.start()
        argv = [sys.executable, "-m", "trainer_platform.cli", "watch", str(run)]
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "120", "TERM": "xterm-256color"}
        if mode == "plain":
            proc = subprocess.Popen([*argv, "--plain"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env)
            reader = None
        else:
            master, slave = pty.openpty()
            proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env)
            os.close(slave)
            reader = threading.Thread(target=_drain, args=(master,), daemon=True)
            reader.start()
        time.sleep(warmup_s)
        cpu0, rchar0, bytes0, t0 = proc_cpu_s(proc.pid), proc_rchar(proc.pid), appended[0], time.monotonic()
        time.sleep(seconds)
        cpu1, rchar1, bytes1, t1 = proc_cpu_s(proc.pid), proc_rchar(proc.pid), appended[0], time.monotonic()
        proc.terminate()
        proc.wait(timeout=10)
        stop.set()
        job.join()
    return {
        "startup_cpu_s": cpu0,
        "pct": 100 * (cpu1 - cpu0) / (t1 - t0),
        "read_ratio": (rchar1 - rchar0) / max(1, bytes1 - bytes0),
        "steps": (t1 - t0) / step_s,
    }


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 65536):
            pass
    except OSError:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="steady window measured per mode")
    parser.add_argument("--step-s", type=float, default=1.0, help="seconds between two steps of the stand-in job")
    parser.add_argument("--warmup-s", type=float, default=8.0, help="start-up left out of the window")
    parser.add_argument("--no-readme", action="store_true", help="do not add result rows to README.md")
    args = parser.parse_args()
    code = 0
    for mode in ("plain", "live"):
        r = measure(mode, args.seconds, args.step_s, args.warmup_s)
        verdict = "pass" if r["pct"] < TARGET_PCT else "FAIL"
        code |= verdict != "pass"
        print(
            f"{mode}: {r['pct']:.2f}% of one core over {args.seconds:.0f} s ({r['steps']:.0f} steps), start-up "
            f"{r['startup_cpu_s']:.2f} CPU s, read {r['read_ratio']:.2f}x the bytes appended  {verdict}"
        )
        if not args.no_readme:
            row = [
                today(),
                machine(),
                load_average(),
                mode,
                f"{args.step_s:g}",
                f"{args.seconds:.0f}",
                f"{r['pct']:.2f}",
                f"{r['startup_cpu_s']:.2f}",
                f"{r['read_ratio']:.2f}",
                verdict,
            ]
            record_result("watch", row)
    return code


if __name__ == "__main__":
    sys.exit(main())
