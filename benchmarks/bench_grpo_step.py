"""Benchmark: where the time of a tiny GRPO job on CPU goes, per step (verl's own timings) and before step 1.

    .venv/bin/python benchmarks/bench_grpo_step.py [--steps 6] [--no-readme] [--keep]

Runs `python train.py algorithm=grpo data=tiny_math train.steps=N name=bench-grpo` once, in a fresh temp dir (the
built-in tiny model and tiny math data, the `hf` rollout, the local launcher), and reads the run dir's metrics
(the last stdout line is `run dir: PATH`). Reported per step, and as medians over steps 2..N (step 1 carries
one-off warm-up work): verl's `timing_s/gen` (rollout), `old_log_prob`, `ref`, `adv`, `update_actor`,
`update_weights` and `step`, plus "other" (step minus the listed parts). Also: the whole job's wall time, and its
startup, the part before step 1 began: the moment step 1's metrics record appeared in metrics.jsonl (polled every
50 ms) minus step 1's own `timing_s/step`; teardown is what follows the last record.

There is no anchor: this is a breakdown, not a comparison, and it has no target (it fails only if the job does).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import REPO_ROOT, BenchmarkError, load_average, machine, record_result, replace_block, today  # noqa: E402

sys.path.insert(0, str(REPO_ROOT))

from trainer_platform.runs import RunDir  # noqa: E402
from trainer_platform.runs.metrics import read_jsonl  # noqa: E402

PARTS = ("gen", "old_log_prob", "ref", "adv", "update_actor", "update_weights")
COLUMNS = (*PARTS, "step")
RUN_DIR_PREFIX = "run dir: "
POLL_S = 0.05


def _pump(stream: IO[str], log: IO[str], lines: list[str], first_run_dir: list[Path]) -> None:
    """Copy the job's output to the log; remember every line and the first `run dir:` path."""
    for line in stream:
        log.write(line)
        lines.append(line.rstrip("\n"))
        if line.startswith(RUN_DIR_PREFIX) and not first_run_dir:
            first_run_dir.append(Path(line[len(RUN_DIR_PREFIX) :].strip()))


def run_job(work: Path, steps: int, name: str) -> tuple[float, Path, dict[int, float], Path]:
    """Run train.py; return (wall s, run dir, {step: seconds after start its metrics record appeared}, log path)."""
    argv = [sys.executable, str(REPO_ROOT / "train.py"), "algorithm=grpo", "data=tiny_math", f"train.steps={steps}",
            f"name={name}"]  # fmt: skip
    log_path = work / "stdout.log"
    lines: list[str] = []
    first_run_dir: list[Path] = []
    seen: dict[int, float] = {}
    print(f"$ {' '.join(argv)}   (cwd {work})", flush=True)
    with log_path.open("w") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=work, env=dict(os.environ), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace")  # fmt: skip
        assert proc.stdout is not None
        pump = threading.Thread(target=_pump, args=(proc.stdout, log, lines, first_run_dir), daemon=True)
        pump.start()
        while proc.poll() is None:
            if first_run_dir:
                now = time.perf_counter() - start
                for record in read_jsonl(first_run_dir[0] / "metrics.jsonl"):
                    seen.setdefault(int(record["step"]), now)
            time.sleep(POLL_S)
        wall = time.perf_counter() - start
        pump.join()
    if proc.returncode != 0:
        tail = "\n".join(lines[-40:])
        raise BenchmarkError(f"exit {proc.returncode}: {' '.join(argv)}\n--- {log_path} (tail) ---\n{tail}")
    last = next((x for x in reversed(lines) if x.strip()), "")
    if not last.startswith(RUN_DIR_PREFIX):
        raise BenchmarkError(f"the job's last stdout line is not '{RUN_DIR_PREFIX}PATH': {last!r} (see {log_path})")
    run_dir = Path(last[len(RUN_DIR_PREFIX) :].strip())
    if first_run_dir and first_run_dir[0].resolve() != run_dir.resolve():
        seen = {}  # the records were polled in another folder: appearance times are not this run's
    return wall, run_dir, seen, log_path


def step_timings(records: list[dict[str, Any]], steps: int) -> dict[int, dict[str, float]]:
    """{step: {column: seconds}} for steps 1..steps, "other" included; raises if a step or a timing is missing."""
    by_step = {int(r["step"]): r["data"] for r in records}
    missing = [s for s in range(1, steps + 1) if s not in by_step]
    if missing:
        raise BenchmarkError(f"metrics.jsonl has no record for steps {missing} (has {sorted(by_step)})")
    out: dict[int, dict[str, float]] = {}
    for s in range(1, steps + 1):
        data = by_step[s]
        row: dict[str, float] = {}
        for col in COLUMNS:
            key = f"timing_s/{col}"
            if key not in data:
                raise BenchmarkError(f"step {s}: no {key} in its metrics (keys: {sorted(data)})")
            row[col] = float(data[key])
        row["other"] = row["step"] - sum(row[p] for p in PARTS)
        out[s] = row
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6, help="training steps (default 6; medians over 2..steps)")
    parser.add_argument("--name", default="bench-grpo", help="run name (default bench-grpo)")
    parser.add_argument("--no-readme", action="store_true", help="do not write the result into benchmarks/README.md")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (run dir, log) and print its path")
    args = parser.parse_args()
    if args.steps < 2:
        raise SystemExit("--steps must be at least 2 (medians are over steps 2..steps)")

    tmp = tempfile.mkdtemp(prefix="bench-grpo-") if args.keep else None
    with tempfile.TemporaryDirectory(prefix="bench-grpo-") if tmp is None else _Keep(tmp) as work_dir:
        work = Path(work_dir)
        print(f"tiny GRPO job, {args.steps} steps, on {machine()} (load {load_average()})", flush=True)
        wall, run_dir, seen, _log = run_job(work, args.steps, args.name)
        run = RunDir.open(run_dir)
        state = run.read_status().state
        if state != "succeeded":
            raise BenchmarkError(f"{run_dir}: status {state!r}, not 'succeeded'")
        table = step_timings(run.read_metrics(), args.steps)
        if args.keep:
            print(f"kept: {work}")

    cols = (*COLUMNS, "other")
    later = range(2, args.steps + 1)
    medians = {c: statistics.median(table[s][c] for s in later) for c in cols}
    startup = seen[1] - table[1]["step"] if 1 in seen else None
    teardown = wall - seen[args.steps] if args.steps in seen else None

    print()
    print(f"{'step':<8}" + "".join(f"{c:>16}" for c in cols))
    for s in range(1, args.steps + 1):
        print(f"{s:<8}" + "".join(f"{table[s][c]:>16.2f}" for c in cols))
    print(f"{'median':<8}" + "".join(f"{medians[c]:>16.2f}" for c in cols) + f"   (steps 2..{args.steps})")
    print()
    fmt = "-" if startup is None else f"{startup:.2f}"
    print(f"job wall time {wall:.2f} s; startup (before step 1 began) {fmt} s; "
          f"steps 1..{args.steps} {sum(table[s]['step'] for s in table):.2f} s; "
          f"teardown (after the last record) {'-' if teardown is None else f'{teardown:.2f}'} s")  # fmt: skip
    print(f"run dir was {run_dir} (removed with the temp dir unless --keep)")

    if not args.no_readme:
        record_result(
            "grpo_step",
            [today(), machine(), load_average(), str(args.steps), f"{wall:.1f}", fmt]
            + [f"{table[1]['step']:.2f}"]
            + [f"{medians[c]:.2f}" for c in cols],
        )
        header = "| step | " + " | ".join(f"{c} (s)" for c in cols) + " |\n"
        header += "|---" * (len(cols) + 1) + "|\n"
        rows = "".join(
            f"| {s} | " + " | ".join(f"{table[s][c]:.2f}" for c in cols) + " |\n" for s in range(1, args.steps + 1)
        )
        rows += f"| median 2..{args.steps} | " + " | ".join(f"{medians[c]:.2f}" for c in cols) + " |\n"
        note = f"Latest run ({today()}, {machine()}, load {load_average()}): wall {wall:.1f} s, startup {fmt} s.\n\n"
        replace_block("grpo_step_last", note + header + rows)
    return 0


class _Keep:
    """A stand-in for TemporaryDirectory that leaves the folder in place."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> str:
        return self.path

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    sys.exit(main())
