"""`runs` over many synthetic run dirs: cold (no index: read every run, write the index), warm (indexed), and the
anchor, a plain scan that opens every run's status.json and nothing else.

Builds N run dirs (default 5,000; 1 in 10 inside sweep folders, 1 in 50 running) with tests/runs/synthetic_runs.py
in a temp dir, then times, interleaved, in this process: `catalog(root)` after deleting the index (cold),
`catalog(root)` with the index in place (warm), and the plain status scan; then the whole `trainer-platform runs
ROOT --json` command in a fresh process, warm, as a user runs it. Target: warm median < 0.3 s.

Run: `.venv/bin/python benchmarks/bench_runs_index.py [--runs 5000] [--reps 5] [--no-readme]`
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _timing import REPO_ROOT, BenchmarkError, Invocation, load_average, machine, record_result, time_invocation, today

sys.path.insert(0, str(REPO_ROOT / "tests" / "runs"))
sys.path.insert(0, str(REPO_ROOT))

from synthetic_runs import write_run  # noqa: E402

from trainer_platform.runs.catalog import INDEX_FILE, ScanStats, catalog  # noqa: E402
from trainer_platform.runs.index import walk_run_dirs  # noqa: E402

WARM_TARGET_S = 0.3


def build(root: Path, n: int) -> None:
    for i in range(n):
        sweep = f"sweep-{i // 100}/" if i % 10 == 0 else ""
        state = "running" if i % 50 == 0 else ("failed" if i % 7 == 0 else "succeeded")
        created = f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00+00:00"
        lr = (1e-5, 3e-5, 1e-4, 3e-4)[i % 4]
        write_run(root, f"{sweep}run-{i:05d}", state=state, created=created, spec_values={"algorithm.lr": lr},
                  seed=i, steps=20, logged=20 if state != "running" else 7)  # fmt: skip


def plain_scan(root: Path) -> int:
    """The anchor: every status.json opened and parsed, nothing else (no spec, metrics or checkpoint)."""
    count = 0
    for rel, _ in walk_run_dirs(root):
        json.loads((root / rel / "status.json").read_bytes())
        count += 1
    return count


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    c0, t0 = cpu_s(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, cpu_s() - c0


def cli_warm(root: Path) -> tuple[float, float]:
    """(wall, cpu) seconds of `trainer-platform runs ROOT --json` in a fresh process, checked to list every run."""
    log = root.parent / "runs-cli.json"
    argv = [sys.executable, "-m", "trainer_platform.cli", "runs", str(root), "--json"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    wall, cpu = time_invocation(Invocation(argv=argv, cwd=root.parent, env=env, log=log))
    listed = json.loads(log.read_text())
    if len(listed) != sum(1 for _ in walk_run_dirs(root)):
        raise BenchmarkError(f"`runs --json` listed {len(listed)} runs")
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-runs-index-") as tmp:
        root = Path(tmp) / "runs"
        t0 = time.perf_counter()
        build(root, args.runs)
        print(f"built {args.runs} run dirs in {time.perf_counter() - t0:.1f} s")
        catalog(root)  # untimed warm-up (page cache)
        walls: dict[str, list[float]] = {"cold": [], "warm": [], "scan": []}
        cpus: dict[str, list[float]] = {"cold": [], "warm": [], "scan": []}
        for rep in range(args.reps):
            (root / INDEX_FILE).unlink()
            cold = ScanStats()
            for name, fn in (
                ("cold", lambda s=cold: catalog(root, stats=s)),  # type: ignore[misc]
                ("warm", lambda: catalog(root)),
                ("scan", lambda: plain_scan(root)),
            ):
                wall, cpu = timed(fn)
                walls[name].append(wall)
                cpus[name].append(cpu)
            if cold.read != args.runs:
                raise BenchmarkError(f"cold pass read {cold.read} runs, expected {args.runs}")
            warm = ScanStats()
            found = catalog(root, stats=warm)
            if warm.read != 0 or len(found) != args.runs:
                raise BenchmarkError(f"warm pass read {warm.read} runs and found {len(found)}")
            print(f"  rep {rep + 1}: " + "  ".join(f"{k} {v[-1]:.3f} s" for k, v in walls.items()), flush=True)
        cli_runs = [cli_warm(root) for _ in range(3)]
        cli, cli_cpu = statistics.median(w for w, _ in cli_runs), statistics.median(c for _, c in cli_runs)
    med = {k: statistics.median(v) for k, v in walls.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpus.items()}
    ok = med["warm"] < WARM_TARGET_S
    verdict = "pass" if ok else "FAIL"
    print(
        f"cold {med['cold']:.3f} s, warm {med['warm']:.3f} s wall {cpu_med['warm']:.3f} s cpu "
        f"(target < {WARM_TARGET_S}), plain status scan "
        f"{med['scan']:.3f} s; warm/scan cpu ratio {cpu_med['warm'] / cpu_med['scan']:.2f}; "
        f"`runs --json` warm, whole process {cli:.2f} s wall, {cli_cpu:.2f} s cpu: {verdict}"
    )
    if not args.no_readme:
        record_result(
            "runs_index",
            [
                today(), machine(), load_average(), str(args.runs), str(args.reps),
                f"{med['cold']:.3f}", f"{med['warm']:.3f}", f"{med['scan']:.3f}",
                f"{cpu_med['warm'] / cpu_med['scan']:.2f}", f"{cli:.2f} ({cli_cpu:.2f} cpu)", verdict,
            ],
        )  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
