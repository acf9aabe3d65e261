"""Benchmark: `python train.py algorithm=sft data=tiny_sft` (tiny SFT on CPU) vs its verl command run directly.

    .venv/bin/python benchmarks/bench_sft_overhead.py [--reps 3] [--no-readme]

Platform: `python train.py` in a fresh temp dir per repetition (compose, plan, prepare the cached tiny model and
data, write the run dir, launch through the local launcher, tee the log, record status). Anchor: the verl command
from the run dir's job.json of a first (untimed) platform run, started directly: argv with "python" replaced by this
interpreter, the job's env merged over os.environ (plus PYTHONUNBUFFERED=1, as the local launcher sets), a fresh
cwd, and a fresh `trainer.default_local_dir` and `VERL_FILE_LOGGER_PATH` per repetition so every run trains from
scratch. Target: median(platform) / median(anchor) <= 1.10.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import (  # noqa: E402
    REPO_ROOT,
    Case,
    Invocation,
    load_average,
    report_ratio,
    run_interleaved,
    time_invocation,
)

TARGET = 1.10
CKPT_KEY = "trainer.default_local_dir="
METRICS_ENV = "VERL_FILE_LOGGER_PATH"


def platform_invocation(work: Path, tag: str) -> Invocation:
    cwd = work / f"platform-{tag}"
    return Invocation(
        argv=[sys.executable, str(REPO_ROOT / "train.py"), "algorithm=sft", "data=tiny_sft"],
        cwd=cwd,
        env=dict(os.environ),
        log=cwd / "stdout.log",
    )


def run_dir_of(cwd: Path) -> Path:
    found = sorted(p.parent for p in cwd.glob("runs/*/job.json"))
    if len(found) != 1:
        raise SystemExit(f"expected one run dir with job.json under {cwd}/runs, found {len(found)}")
    return found[0]


def anchor_invocation(work: Path, job: dict[str, Any], tag: str) -> Invocation:
    """The job's own command, with fresh checkpoint and metrics paths under work/anchor-TAG."""
    cwd = work / f"anchor-{tag}"
    argv = [str(a) for a in job["argv"]]
    if argv[0] == "python":
        argv[0] = sys.executable
    if sum(a.startswith(CKPT_KEY) for a in argv) != 1:
        raise SystemExit(f"job argv has no single {CKPT_KEY}...: {argv}")
    argv = [f"{CKPT_KEY}{cwd / 'checkpoints'}" if a.startswith(CKPT_KEY) else a for a in argv]
    job_env = {str(k): str(v) for k, v in job["env"].items()}
    if METRICS_ENV not in job_env:
        raise SystemExit(f"job env has no {METRICS_ENV}: {job_env}")
    job_env[METRICS_ENV] = str(cwd / "metrics.jsonl")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **job_env}
    return Invocation(argv=argv, cwd=cwd, env=env, log=cwd / "train.log")


def _metric_lines(path: Path) -> int:
    if not path.is_file():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def _platform_trained(inv: Invocation) -> None:
    run_dir = run_dir_of(inv.cwd)
    status = json.loads((run_dir / "status.json").read_text())
    if _metric_lines(run_dir / "metrics.jsonl") == 0 or not any((run_dir / "checkpoints").glob("global_step_*")):
        raise SystemExit(f"platform run left no metrics/checkpoint in {run_dir} (status {status})")


def _anchor_trained(inv: Invocation) -> None:
    if _metric_lines(inv.cwd / "metrics.jsonl") == 0 or not any((inv.cwd / "checkpoints").glob("global_step_*")):
        raise SystemExit(f"anchor run left no metrics/checkpoint in {inv.cwd} (see {inv.log})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions of each command (default 3)")
    parser.add_argument("--no-readme", action="store_true", help="do not append the result to benchmarks/README.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-sft-") as tmp:
        work = Path(tmp)
        # warm-up (untimed): the first platform run builds/loads the cache and gives the job.json the anchor replays
        warm = platform_invocation(work, "warmup")
        print(f"warm-up platform run in {warm.cwd} ...", flush=True)
        time_invocation(warm)
        _platform_trained(warm)
        job = json.loads((run_dir_of(warm.cwd) / "job.json").read_text())

        platform_case = Case("platform", lambda rep: platform_invocation(work, str(rep)), verify=_platform_trained)
        anchor_case = Case("anchor", lambda rep: anchor_invocation(work, job, str(rep)), verify=_anchor_trained)
        print(f"train.py vs direct verl SFT, {args.reps} interleaved reps (load {load_average()})", flush=True)
        run_interleaved([platform_case, anchor_case], args.reps)

    return report_ratio("sft_overhead", platform_case, anchor_case, args.reps, TARGET, readme=not args.no_readme)


if __name__ == "__main__":
    sys.exit(main())
