"""Benchmark: `train.py ... dry_run=true` vs verl composing the same job config itself (`main_ppo --cfg job`).

    .venv/bin/python benchmarks/bench_dry_run.py [--reps 5] [--no-readme]

Platform: `python train.py algorithm=grpo model=qwen2_5_7b data=gsm8k compute=8xh100 dry_run=true data.dir=DIR`
(compose, validate, plan, translate, write the run dir, print the command), started in a fresh temp dir per
repetition so its run dir lands there. Anchor: `python -m verl.trainer.main_ppo --cfg job <overrides>` with exactly
the overrides and env of the job the dry run wrote to its run dir's job.json (verl's own Hydra compose + print).
Target: median(platform) / median(anchor) <= 0.3.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType
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

TARGET = 0.3
OVERRIDES = ["algorithm=grpo", "model=qwen2_5_7b", "data=gsm8k", "compute=8xh100", "dry_run=true"]
ENTRY = "verl.trainer.main_ppo"


def _conftest() -> ModuleType:
    """tests/conftest.py, for its `write_gsm8k_like` (the same gsm8k-format parquet the tests use)."""
    spec = importlib.util.spec_from_file_location("_tp_tests_conftest", REPO_ROOT / "tests" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def platform_invocation(work: Path, data_dir: Path, tag: str) -> Invocation:
    cwd = work / f"platform-{tag}"
    argv = [sys.executable, str(REPO_ROOT / "train.py"), *OVERRIDES, f"data.dir={data_dir}"]
    return Invocation(argv=argv, cwd=cwd, env=dict(os.environ), log=cwd / "stdout.log")


def job_of(cwd: Path) -> dict[str, Any]:
    """The job.json of the single run a dry run wrote under `cwd/runs/`."""
    found = sorted(cwd.glob("runs/*/job.json"))
    if len(found) != 1:
        raise SystemExit(f"expected one run dir with job.json under {cwd}/runs, found {len(found)}")
    job: dict[str, Any] = json.loads(found[0].read_text())
    return job


def anchor_invocation(work: Path, job: dict[str, Any], tag: str) -> Invocation:
    argv = [str(a) for a in job["argv"]]
    if ENTRY not in argv:
        raise SystemExit(f"job.json argv does not run {ENTRY}: {argv}")
    overrides = argv[argv.index(ENTRY) + 1 :]
    env = {**os.environ, **{str(k): str(v) for k, v in job["env"].items()}}
    cwd = work / f"anchor-{tag}"
    return Invocation(
        argv=[sys.executable, "-m", ENTRY, "--cfg", "job", *overrides], cwd=cwd, env=env, log=cwd / "stdout.log"
    )


def _wrote_job(inv: Invocation) -> None:
    job_of(inv.cwd)


def _printed_config(inv: Invocation) -> None:
    if "actor_rollout_ref:" not in inv.log.read_text(errors="replace"):
        raise SystemExit(f"{ENTRY} --cfg job printed no config (see {inv.log})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions of each command (default 5)")
    parser.add_argument("--no-readme", action="store_true", help="do not append the result to benchmarks/README.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-dry-run-") as tmp:
        work = Path(tmp)
        data_dir = _conftest().write_gsm8k_like(work / "gsm8k")

        # warm-up (untimed): one platform dry run gives the job whose overrides the anchor replays; one anchor run
        warm = platform_invocation(work, data_dir, "warmup")
        time_invocation(warm)
        job = job_of(warm.cwd)
        time_invocation(anchor_invocation(work, job, "warmup"))

        platform_case = Case("platform", lambda rep: platform_invocation(work, data_dir, str(rep)), verify=_wrote_job)
        anchor_case = Case("anchor", lambda rep: anchor_invocation(work, job, str(rep)), verify=_printed_config)
        print(f"dry run vs main_ppo --cfg job, {args.reps} interleaved reps (load {load_average()})", flush=True)
        run_interleaved([platform_case, anchor_case], args.reps)

    return report_ratio("dry_run", platform_case, anchor_case, args.reps, TARGET, readme=not args.no_readme)


if __name__ == "__main__":
    sys.exit(main())
