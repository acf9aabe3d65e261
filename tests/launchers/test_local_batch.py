"""A local sweep as one batch of real processes: jobs wait `queued` until their GPUs are free, run at most
launcher.max_parallel at once, each with its own CUDA_VISIBLE_DEVICES; a queued job cancelled from another process
never starts. The GPU ids are given through launcher.gpus (no GPU here: the jobs only read the variable)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from launcher_contract import REPO_ROOT, new_run, python_job
from launchers.base import handle_of
from launchers.local import LocalLauncher
from launchers.options import LocalOptions
from trainer_platform.runs import CANCELLED, QUEUED, SUCCEEDED, RunDir

# records when it ran and with which GPUs, then holds its GPUs for a while
JOB = """
    import json, os, time
    start = time.time()
    time.sleep(1.5)
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
    json.dump({"gpus": gpus, "start": start, "end": time.time()}, open("ran.json", "w"))
"""


def _launcher(**options: object) -> LocalLauncher:
    return LocalLauncher(grace_s=2.0, options=LocalOptions(name="local", **options))  # type: ignore[arg-type]


def _batch(tmp_path: Path, n: int, gpus_per_job: int) -> tuple[list, list[RunDir]]:
    jobs = [replace(python_job(JOB), gpus_per_node=gpus_per_job) for _ in range(n)]
    return jobs, [new_run(tmp_path, job, f"run{i}") for i, job in enumerate(jobs)]


def _ran(runs: list[RunDir]) -> list[dict]:
    return [json.loads((run.path / "ran.json").read_text()) for run in runs]


def _most_at_once(ran: list[dict]) -> int:
    return max(sum(1 for r in ran if r["start"] <= t["start"] < r["end"]) for t in ran)


def test_gpu_jobs_run_side_by_side_on_disjoint_sets(tmp_path: Path) -> None:
    launcher = _launcher(gpus=(0, 1, 2, 3))
    jobs, runs = _batch(tmp_path, 4, gpus_per_job=2)
    handles = launcher.submit(jobs, runs)
    assert [run.read_status().state for run in runs].count(QUEUED) == 2  # two fit now, two wait
    assert [launcher.wait(h) for h in handles] == [0, 0, 0, 0]
    ran = _ran(runs)
    assert _most_at_once(ran) == 2
    for a in ran:
        for b in ran:
            if a is not b and a["start"] < b["end"] and b["start"] < a["end"]:  # ran at the same time
                assert not set(a["gpus"].split(",")) & set(b["gpus"].split(","))
    assert sorted(r["gpus"] for r in ran) == ["0,1", "0,1", "2,3", "2,3"]
    assert all(run.read_status().state == SUCCEEDED for run in runs)


def test_max_parallel_limits_the_batch(tmp_path: Path) -> None:
    launcher = _launcher(gpus=(0, 1, 2, 3), max_parallel=1)
    jobs, runs = _batch(tmp_path, 3, gpus_per_job=1)
    handles = launcher.submit(jobs, runs)
    assert [launcher.wait(h) for h in handles] == [0, 0, 0]
    ran = _ran(runs)
    assert _most_at_once(ran) == 1 and all(r["gpus"] == "0" for r in ran)


def test_cpu_jobs_run_max_parallel_at_a_time_without_cuda_visible_devices(tmp_path: Path) -> None:
    launcher = _launcher(max_parallel=2)
    jobs, runs = _batch(tmp_path, 3, gpus_per_job=0)
    handles = launcher.submit(jobs, runs)
    assert [launcher.wait(h) for h in handles] == [0, 0, 0]
    ran = _ran(runs)
    assert _most_at_once(ran) == 2 and all(r["gpus"] is None for r in ran)


def test_a_queued_job_cancelled_from_another_process_never_starts(tmp_path: Path) -> None:
    launcher = _launcher(max_parallel=1)
    jobs, runs = _batch(tmp_path, 2, gpus_per_job=0)
    handles = launcher.submit(jobs, runs)
    assert runs[1].read_status().state == QUEUED
    assert launcher.status(handle_of(runs[1])) == QUEUED
    code = "import sys; from launchers.base import handle_of, launcher_for; from trainer_platform.runs import RunDir\n"
    code += "r = RunDir.open(sys.argv[1]); h = handle_of(r); launcher_for(h).cancel(h)"
    subprocess.run([sys.executable, "-c", code, str(runs[1].path)], cwd=REPO_ROOT, check=True, timeout=60)
    assert launcher.wait(handles[0]) == 0
    launcher.wait(handles[1])
    time.sleep(0.5)
    assert runs[1].read_status().state == CANCELLED and not (runs[1].path / "ran.json").exists()


# submits three jobs that sleep, one at a time, and follows them as train.py does; the test interrupts it
BATCH_DRIVER = """
    import sys
    from pathlib import Path
    from launchers.local import LocalLauncher
    from launchers.options import LocalOptions
    from trainer_platform.job import VerlJob
    from trainer_platform.runs import RunDir

    runs = []
    for i in range(3):
        run = RunDir.allocate(Path(sys.argv[1]), f"run{i}")
        run.create({"spec.yaml": "x: 1\\n"})
        runs.append(run)
    job = VerlJob(entry_point="t", argv=("python", "-c", "import time; print('up', flush=True); time.sleep(60)"))
    launcher = LocalLauncher(grace_s=2.0, options=LocalOptions(name="local", max_parallel=1))
    handles = launcher.submit([job] * 3, runs)
    print("submitted", flush=True)
    sys.exit(max(launcher.wait(h) for h in handles))
"""


def test_ctrl_c_while_following_stops_the_whole_batch(tmp_path: Path) -> None:
    import signal
    import textwrap

    driver = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(BATCH_DRIVER), str(tmp_path)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert driver.stdout is not None and driver.stdout.readline().strip() == "submitted"
    first = RunDir.open(tmp_path / "run0")
    deadline = time.monotonic() + 30
    while "up" not in (first.log_path.read_text() if first.log_path.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.1)
    driver.send_signal(signal.SIGINT)
    assert driver.wait(timeout=60) == 130
    states = [RunDir.open(tmp_path / f"run{i}").read_status().state for i in range(3)]
    assert states == [CANCELLED, CANCELLED, CANCELLED]
    assert not (tmp_path / "run1" / "train.log").exists() or "up" not in (tmp_path / "run1" / "train.log").read_text()
