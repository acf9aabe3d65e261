"""What the default job prints on a non-terminal stdout: lines printed and time to the first printed line.

Runs `python train.py [ARGS]` (default: the default job) in a fresh temp dir with stdout a pipe, timestamps every
line as it arrives, and reports the number of lines and the seconds from start to the first line.
Targets (issue 6): fewer than 40 lines, first line within 2 s.

Run: `.venv/bin/python benchmarks/bench_console.py [--no-readme] [-- train.py overrides]`
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _timing import REPO_ROOT, BenchmarkError, load_average, machine, record_result, today

LINES_TARGET = 40
FIRST_LINE_TARGET_S = 2.0


def measure(overrides: list[str], cwd: Path) -> tuple[int, float, float, str]:
    """(lines, seconds to the first line, total seconds, output) of one `python train.py OVERRIDES` run."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "train.py"), *overrides],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "WANDB_MODE": "offline"},
    )
    assert proc.stdout is not None
    first: float | None = None
    lines: list[bytes] = []
    for line in proc.stdout:
        if first is None:
            first = time.perf_counter() - start
        lines.append(line)
    code = proc.wait()
    total = time.perf_counter() - start
    text = b"".join(lines).decode("utf-8", errors="replace")
    if code != 0:
        raise BenchmarkError(f"exit {code}: train.py {' '.join(overrides)}\n{text[-3000:]}")
    return len(lines), first if first is not None else total, total, text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-readme", action="store_true", help="do not add a results row to README.md")
    parser.add_argument("overrides", nargs="*", help="train.py overrides (default: none, the default job)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        n, first, total, text = measure(args.overrides, Path(tmp))
    print(text, end="")
    ok = n < LINES_TARGET and first < FIRST_LINE_TARGET_S
    verdict = "pass" if ok else "FAIL"
    print(
        f"--- lines printed {n} (target < {LINES_TARGET}), first line after {first:.2f} s "
        f"(target < {FIRST_LINE_TARGET_S} s), whole run {total:.1f} s: {verdict}"
    )
    if not args.no_readme:
        job = " ".join(args.overrides) or "default job"
        row = [today(), machine(), load_average(), job, str(n), f"{first:.2f}", f"{total:.1f}", verdict]
        record_result("console", row)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
