"""A 16-run sweep onto the local Slurm: time until all 16 are queued, ours vs hydra-submitit-launcher.

Starts the test Slurm (tests/slurm_service.py: root and the slurm-wlm, slurmdbd, munge, mariadb-server packages).
Both sides sweep the same 16 runs (the tiny SFT run, train.seed=0..15) in the same session, alternating, each from
a fresh process; a poller here watches `squeue` and stops the clock when all 16 tasks are in the queue (one array
each side; the node is drained, so nothing starts). Then everything is cancelled and the next side goes.
- **platform:** `python train.py -m algorithm=sft data=tiny_sft launcher=slurm train.seed=0,...,15` (detached):
  every run composed, validated, planned, prepared into its run dir, then ONE `launcher.submit` (one array).
- **anchor:** benchmarks/hydra_submitit_app.py (a Hydra app on the same conf/, its task the platform's single run
  on the node) with `-m hydra/launcher=submitit_slurm` and the same overrides: hydra-submitit composes and pickles
  each run's config and submits one array; validation and preparation happen later, on the nodes.
- **Three clocks:** from process start (end to end); from the moment the checked sweep is handed on to be
  launched (the anchor: Hydra's sweeper enters the launcher plugin's `launch`; the platform: `SweepSession.launch`
  entered; recorded by benchmarks/_launch_clock.py); and, for the platform, from its `SlurmLauncher.submit` entered
  (16 runs prepared), each until all 16 are queued. The checkout's bytecode is compiled first (compile_checkout).
- **Target:** median(platform) / median(anchor) <= 0.5 (end to end).

hydra-submitit-launcher is a bench-only install, never a project dependency: `--hydra-submitit DIR` names a folder
made with `pip install --target DIR hydra-submitit-launcher==1.2.0`; without it the benchmark makes one under
~/.cache/trainer_platform/bench/ with pip.

Run: `.venv/bin/python benchmarks/bench_slurm_submit.py [--reps 3] [--hydra-submitit DIR] [--no-readme]`
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _timing import REPO_ROOT, load_average, machine, record_result, today

sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests")]  # this checkout, and the test services
import slurm_service  # noqa: E402

TARGET = 0.5
RUNS = 16
SWEEP = ["algorithm=sft", "data=tiny_sft", "train.seed=" + ",".join(str(i) for i in range(RUNS))]
BENCH = Path(__file__).resolve().parent
HSL_VERSION = "1.2.0"


def hydra_submitit_dir(given: str | None) -> Path:
    """A folder holding hydra-submitit-launcher (bench-only), installed there with pip when missing."""
    folder = Path(given) if given else Path.home() / ".cache" / "trainer_platform" / "bench" / f"hsl-{HSL_VERSION}"
    if not (folder / "hydra_plugins" / "hydra_submitit_launcher").is_dir():
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(folder)]
        subprocess.run([*pip, f"hydra-submitit-launcher=={HSL_VERSION}"], check=True)
    return folder


def compile_checkout() -> None:
    """The checkout's bytecode, as any run after the first has it in __pycache__: where PYTHONDONTWRITEBYTECODE is
    set (CI, these machines' sessions) every platform rep would otherwise compile ~90 of its modules from source,
    which the anchor's side (its Hydra app and plugin, pip-installed with their bytecode) does not pay."""
    packages = [str(REPO_ROOT / name) for name in ("trainer_platform", "launchers", "hydra_plugins", "benchmarks")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *packages, str(REPO_ROOT / "train.py")], check=True)


def queued() -> set[str]:
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True, timeout=30).stdout
    return set(out.split())


def drain() -> None:
    """Cancel every job of the test cluster and wait until the queue is empty."""
    subprocess.run(["scancel", "-u", "root"], capture_output=True)
    deadline = time.monotonic() + 120
    while queued() and time.monotonic() < deadline:
        time.sleep(0.2)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one(
    argv: list[str], env: dict[str, str], cwd: Path, clock: Path, detached: bool
) -> tuple[float, float, float, float]:
    """(seconds from process start, from launch entered, CPU seconds, from the platform's launcher.submit entered
    (nan for the anchor)) until all RUNS tasks are queued."""
    before = queued()
    cpu0 = children_cpu()
    start = time.time()
    log = (cwd / "out.log").open("wb")
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 900
    while True:
        new = queued() - before
        if len(new) >= RUNS:
            done = time.time()
            break
        if proc.poll() is not None and proc.returncode != 0 or time.monotonic() > deadline:
            log.close()
            raise RuntimeError(f"{argv[:4]} ended ({proc.returncode}) before {RUNS} were queued: {cwd / 'out.log'}")
        time.sleep(0.02)
    arrays = {job.split("_")[0] for job in new}
    if len(arrays) != 1:
        raise RuntimeError(f"expected one array, got {sorted(new)}")
    if detached:
        proc.wait(timeout=300)
    else:  # hydra-submitit waits for the results: stop it once its array is queued
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    log.close()
    cpu = children_cpu() - cpu0
    launch = float(clock.read_text())
    submit_clock = clock.with_suffix(".submit")
    submit = float(submit_clock.read_text()) if submit_clock.exists() else float("nan")
    return done - start, done - launch, cpu, done - submit


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--hydra-submitit", default=None, help="folder with hydra-submitit-launcher installed")
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    reason = slurm_service.unavailable()
    if reason:
        print(f"bench_slurm_submit: {reason}", file=sys.stderr)
        return 2
    hsl = hydra_submitit_dir(args.hydra_submitit)
    compile_checkout()
    results: dict[str, list[tuple[float, float, float, float]]] = {"platform": [], "anchor": []}
    with tempfile.TemporaryDirectory(prefix="bench-slurm-") as tmp_s:
        tmp = Path(tmp_s)
        cluster = slurm_service.start(tmp / "slurm")
        os.environ.update(cluster.env)
        # queued is what is timed: a drained node keeps the 16 runs from starting (and loading the machine)
        subprocess.run(["scontrol", "update", "NodeName=ALL", "State=DRAIN", "Reason=bench"], check=True)
        env = {**os.environ, "WANDB_MODE": "disabled"}
        env.pop("WANDB_API_KEY", None)
        clock_py = str(BENCH / "_launch_clock.py")
        try:
            for rep in range(args.reps):
                order = ["platform", "anchor"] if rep % 2 == 0 else ["anchor", "platform"]
                for side in order:
                    cwd = tmp / f"{side}-{rep}"
                    cwd.mkdir()
                    clock = cwd / "launch.clock"
                    if side == "platform":
                        submit_clock = ["--submit-clock", str(clock.with_suffix(".submit"))]
                        argv = [sys.executable, clock_py, str(clock), str(REPO_ROOT / "train.py"), "-m",
                                *SWEEP, "launcher=slurm", *submit_clock]  # fmt: skip
                        side_env = env
                    else:
                        argv = [sys.executable, clock_py, str(clock), str(BENCH / "hydra_submitit_app.py"),
                                "-m", *SWEEP, "hydra/launcher=submitit_slurm", f"hydra.sweep.dir={cwd}/sweep",
                                "hydra.launcher.timeout_min=10"]  # fmt: skip
                        side_env = {**env, "PYTHONPATH": f"{hsl}:{REPO_ROOT}"}
                    took = one(argv, side_env, cwd, clock, detached=side == "platform")
                    results[side].append(took)
                    print(
                        f"rep {rep + 1}/{args.reps} {side:<8} end to end {took[0]:6.2f} s, "
                        f"from launch {took[1]:6.2f} s, cpu {took[2]:6.2f} s, from submit {took[3]:6.2f} s",
                        flush=True,
                    )
                    drain()
        finally:
            drain()
            slurm_service.stop(cluster)

    def med(side: str, i: int) -> float:
        return statistics.median(r[i] for r in results[side])

    e2e = med("platform", 0) / med("anchor", 0)
    launch = med("platform", 1) / med("anchor", 1)
    cpu = med("platform", 2) / med("anchor", 2)
    submit = med("platform", 3) / med("anchor", 1)
    verdict = "pass" if e2e <= TARGET else "FAIL"
    print(
        f"end to end: platform {med('platform', 0):.2f} s, anchor {med('anchor', 0):.2f} s, ratio {e2e:.2f}; "
        f"from launch: {med('platform', 1):.2f} s vs {med('anchor', 1):.2f} s, ratio {launch:.2f}; "
        f"cpu ratio {cpu:.2f}; platform launcher.submit -> queued {med('platform', 3):.2f} s, vs the anchor's launch "
        f"{submit:.2f} (target end to end <= {TARGET}) {verdict}"
    )
    if not args.no_readme:
        row = [today(), machine(), load_average(), str(args.reps)]
        row += [f"{med('platform', 0):.2f}", f"{med('anchor', 0):.2f}", f"{e2e:.2f}"]
        row += [f"{med('platform', 1):.2f}", f"{med('anchor', 1):.2f}", f"{launch:.2f}"]
        row += [f"{med('platform', 2):.2f}", f"{med('anchor', 2):.2f}", f"{cpu:.2f}"]
        row += [f"{med('platform', 3):.2f}", f"{submit:.2f}", verdict]
        record_result("slurm_submit", row)
    return 0 if verdict == "pass" else 1


if __name__ == "__main__":
    sys.exit(main())
