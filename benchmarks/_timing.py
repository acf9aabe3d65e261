"""Shared benchmark helpers: interleaved (ABAB...) timing of subprocesses, medians, machine info, README results.

The machine these run on is shared and noisy, so a platform command and its anchor are always timed in the same
process, alternating, and compared by their medians.
"""

from __future__ import annotations

import os
import platform
import re
import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
README = Path(__file__).resolve().parent / "README.md"


@dataclass(frozen=True)
class Invocation:
    """One command to time: argv (no shell), working directory, full environment, and where its output goes."""

    argv: Sequence[str]
    cwd: Path
    env: Mapping[str, str]
    log: Path


@dataclass
class Case:
    """A named thing to time; `prepare(rep)` builds a fresh invocation for repetition `rep` (fresh dirs etc.)."""

    name: str
    prepare: Callable[[int], Invocation]
    # optional check after each run (e.g. the run really trained); raises on failure; not timed
    verify: Callable[[Invocation], None] | None = None
    times: list[float] = field(default_factory=list)
    # CPU seconds (user + sys) of the command and every descendant it waited for, per repetition
    cpu_times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_times)


class BenchmarkError(RuntimeError):
    """A timed command failed: the benchmark's numbers would be meaningless."""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_invocation(inv: Invocation) -> tuple[float, float]:
    """Run `inv` to completion; return (wall seconds, CPU seconds of it and its waited-for descendants).

    Raises BenchmarkError on a non-zero exit. CPU time is far less sensitive than wall time to other load on a
    shared machine, so it is reported next to the wall-time verdict.
    """
    inv.cwd.mkdir(parents=True, exist_ok=True)
    inv.log.parent.mkdir(parents=True, exist_ok=True)
    with inv.log.open("wb") as out:
        cpu_start = _children_cpu()
        start = time.perf_counter()
        proc = subprocess.run(list(inv.argv), cwd=inv.cwd, env=dict(inv.env), stdout=out, stderr=subprocess.STDOUT)
        elapsed = time.perf_counter() - start
        cpu = _children_cpu() - cpu_start
    if proc.returncode != 0:
        tail = inv.log.read_text(errors="replace")[-3000:]
        raise BenchmarkError(f"exit {proc.returncode}: {' '.join(inv.argv)}\n--- {inv.log} (tail) ---\n{tail}")
    return elapsed, cpu


def run_interleaved(cases: Sequence[Case], reps: int, *, quiet: bool = False) -> None:
    """Time every case `reps` times, alternating between them (A B A B ...); fills each case's `times`."""
    for rep in range(reps):
        for case in cases:
            inv = case.prepare(rep)
            seconds, cpu = time_invocation(inv)
            if case.verify is not None:
                case.verify(inv)
            case.times.append(seconds)
            case.cpu_times.append(cpu)
            if not quiet:
                print(f"  rep {rep + 1}/{reps}  {case.name:<10} {seconds:8.2f} s wall {cpu:8.2f} s cpu", flush=True)


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (falls back to platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def nproc() -> int:
    """CPUs this process may run on (what `nproc` prints)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def machine() -> str:
    return f"{nproc()} x {cpu_model()}"


def load_average() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "-"


def today() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def print_table(cases: Sequence[Case], ratio: float, target: float) -> None:
    """Per-repetition times, medians and the platform/anchor ratio (first case over second)."""
    reps = max(len(c.times) for c in cases)
    header = f"{'':<12}" + "".join(f"{'rep ' + str(i + 1):>10}" for i in range(reps)) + f"{'median':>10}"
    print(header)
    for c in cases:
        print(f"{c.name + ' wall':<12}" + "".join(f"{t:>10.2f}" for t in c.times) + f"{c.median:>10.2f}")
    for c in cases:
        print(f"{c.name + ' cpu':<12}" + "".join(f"{t:>10.2f}" for t in c.cpu_times) + f"{c.cpu_median:>10.2f}")
    verdict = "PASS" if ratio <= target else "FAIL"
    print(f"wall ratio {cases[0].name}/{cases[1].name} = {ratio:.3f}  (target <= {target})  {verdict}")
    print(f"cpu ratio  {cases[0].name}/{cases[1].name} = {cases[0].cpu_median / cases[1].cpu_median:.3f}  (info)")


def _results_block(key: str) -> tuple[str, re.Match[str]]:
    """README.md's text and the match of its `<!-- results:KEY -->` ... `<!-- /results:KEY -->` block."""
    text = README.read_text()
    begin, end = f"<!-- results:{key} -->", f"<!-- /results:{key} -->"
    match = re.compile(re.escape(begin) + r"\n(.*?)" + re.escape(end), re.S).search(text)
    if match is None:
        raise BenchmarkError(f"{README}: no '{begin}' ... '{end}' block to put the result in")
    return text, match


def replace_block(key: str, body: str) -> None:
    """Replace everything between `<!-- results:KEY -->` and `<!-- /results:KEY -->` in README.md with `body`."""
    text, match = _results_block(key)
    README.write_text(text[: match.start(1)] + body + text[match.end(1) :])


def record_result(key: str, row: Sequence[str]) -> None:
    """Append `row` to the results table between `<!-- results:KEY -->` and `<!-- /results:KEY -->` in README.md.

    The markers (and the table header between them) must already be in the README; older rows are kept as history.
    """
    text, match = _results_block(key)
    body = match.group(1)
    if body and not body.endswith("\n"):
        body += "\n"
    body += "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |\n"
    README.write_text(text[: match.start(1)] + body + text[match.end(1) :])


def report_ratio(key: str, platform: Case, anchor: Case, reps: int, target: float, *, readme: bool) -> int:
    """Print the comparison, add a results row to the README (unless `readme` is False); exit code 0 if on target."""
    ratio = platform.median / anchor.median
    print()
    print_table([platform, anchor], ratio, target)
    verdict = "pass" if ratio <= target else "FAIL"
    if readme:
        cpu_ratio = platform.cpu_median / anchor.cpu_median
        row = [
            today(),
            machine(),
            load_average(),
            str(reps),
            f"{platform.median:.2f}",
            f"{anchor.median:.2f}",
            f"{ratio:.3f}",
            f"{cpu_ratio:.3f}",
            verdict,
        ]
        record_result(key, row)
    return 0 if verdict == "pass" else 1
