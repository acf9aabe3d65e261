"""A stop rule ends a running job for real, beside it: through the job wrapper tp_job.sh (ssh, slurm) and the local
launcher. The job here is a stand-in process that writes verl's metrics lines (a real verl run is stopped in
tests/e2e/test_diagnostics_e2e.py); the wrapper, the monitor and the launcher are the real ones."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from launchers.jobstate import parse_record
from launchers.local import LocalLauncher
from launchers.render import render
from trainer_platform.diagnostics import config_from_dict
from trainer_platform.job import VerlJob
from trainer_platform.runs import STOPPED, RunDir

# writes one metrics line a second into $TP_RUN_DIR/metrics.jsonl; the loss is NaN from step 3 on; never ends alone
WRITER = """
import json, os, time
path = os.path.join(os.environ["TP_RUN_DIR"], "metrics.jsonl")
for step in range(1, 1000):
    loss = float("nan") if step >= 3 else 1.0 / step
    with open(path, "a") as f:
        f.write(json.dumps({"step": step, "data": {"train/loss": loss, "train/grad_norm": 0.5}}) + "\\n")
    time.sleep(0.3)
"""


def _config() -> dict[str, object]:
    return {**config_from_dict({"poll_s": 0.2}).to_dict()}


def _job() -> VerlJob:
    return VerlJob(
        entry_point="stand-in",
        argv=("python", "-c", WRITER),
        env={"TP_RUN_DIR": "${TP_RUN_DIR}"},
        diagnostics=_config(),
    )


def _wait(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_the_wrapper_records_stopped_with_the_reason(tmp_path: Path) -> None:
    files = render(_job(), launcher="ssh", run_name="r", verl_ext="/nonexistent", python=sys.executable)
    assert {"tp_job.sh", "tp_monitor.py", "tp_diag_rules.py", "tp_diag_metrics.py", "tp_diagnostics.json"} <= set(files)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "stop_requested").write_text("stale\n")  # an earlier attempt's: removed at start
    subprocess.run(["setsid", "-f", "bash", str(tmp_path / "tp_job.sh")], stdin=subprocess.DEVNULL, check=True)

    def record() -> dict | None:  # type: ignore[type-arg]
        state = tmp_path / "job_state.json"
        return parse_record(state.read_text()) if state.exists() else None

    _wait(lambda: (r := record()) is not None and r["state"] != "running")
    final = record()
    assert final is not None and final["state"] == STOPPED, final
    reason = final["stop_reason"]
    assert (reason["rule"], reason["metric"], reason["step"], reason["action"]) == (
        "non_finite",
        "train/loss",
        3,
        "stop",
    )
    anomalies = [json.loads(line) for line in (tmp_path / "diagnostics.jsonl").read_text().splitlines()]
    assert [a["rule"] for a in anomalies] == ["non_finite"]
    assert "trainer_platform diagnostics: stopping the run" in (tmp_path / "train.log").read_text()
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) < 20, "the job was stopped soon after step 3"
    # the wrapper writes its final record, then exits: under load `--alive` can still find it for a moment (the
    # launchers ask --alive before reading the record for this reason); it must be gone soon after
    _wait(lambda: subprocess.run(["bash", str(tmp_path / "tp_job.sh"), "--alive"]).returncode != 0, timeout=30)


def test_the_local_launcher_records_stopped(tmp_path: Path) -> None:
    run = RunDir.allocate(tmp_path, "local-stop")
    run.create({"spec.yaml": "name: x\n"})
    launcher = LocalLauncher(grace_s=2.0)
    job = _job().resolve({"TP_RUN_DIR": str(run.path)})
    handle = launcher.submit([job], [run])[0]
    code = launcher.wait(handle)
    status = run.read_status()
    assert status.state == STOPPED and code != 0
    assert status.extra["stop_reason"]["rule"] == "non_finite" and status.extra["stop_reason"]["step"] == 3
    assert launcher.status(handle) == STOPPED
