"""The monitor beside a job: it follows the run's metrics.jsonl, runs the diagnostics rules on each new step, and
acts on what fires.

    python monitor.py RUN_DIR --config CONFIG.json --pid PID [--group]

- every anomaly: a line in the job's output (train.log), a record in RUN_DIR/diagnostics.jsonl and, when the run
  logs to W&B (config `wandb`), a W&B alert: sent from a companion run `<name>-diagnostics` (job type diagnostics)
  in the run's project and group, since verl's driver owns the training run and W&B takes one writer per run;
- a rule whose action is `stop`: RUN_DIR/stop_requested gets the reason (one JSON line) first, then SIGTERM goes
  to PID (the job wrapper tp_job.sh, which stops its whole session and records the state `stopped`; with --group,
  to PID's process group: the local launcher's job). verl writes a checkpoint only whole (its pointer file last),
  so the last complete checkpoint is what a stopped run keeps, and `resume` continues from it.

It exits once PID is gone (after a last read), or on SIGTERM. Earlier attempts of a resumed run
(metrics.attempt-N.jsonl) only prime the rules: they are not reported or acted on again; every line of metrics.jsonl
is this attempt's (launchers archive or remove an earlier attempt's before starting the job).

Where it runs: beside the job, started by launchers/templates/job.sh.j2 (ssh, slurm), ray_entry.sh.j2 (ray) and
the local launcher. Remote hosts get the platform's verl/ folder but not necessarily the platform, so launchers
ship this file with rules.py and runs/metrics.py (standard library only, no other platform imports) beside the
job's wrapper as tp_monitor.py, tp_diag_rules.py and tp_diag_metrics.py (launchers/render.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

if __package__:
    from trainer_platform.diagnostics import rules
    from trainer_platform.runs import metrics
else:  # shipped beside a job as a file: its modules lie next to it (launchers/render.py)
    import tp_diag_metrics as metrics  # type: ignore[no-redef]
    import tp_diag_rules as rules  # type: ignore[no-redef]

ANOMALIES_FILE = "diagnostics.jsonl"
STOP_FILE = "stop_requested"
# the line a stop prints into the job's output: launchers that only get the output back (ray) read the reason there
STOP_MARKER = "trainer_platform diagnostics: stopping the run: "
PREFIX = "trainer_platform diagnostics: "


def stop_reason_from_output(text: str) -> dict[str, Any] | None:
    """The stop reason a monitor printed into a job's output, or None."""
    at = text.rfind(STOP_MARKER)
    if at < 0:
        return None
    line = text[at + len(STOP_MARKER) :].split("\n", 1)[0]
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def read_stop_reason(run_dir: Path) -> dict[str, Any] | None:
    """The reason the monitor recorded for stopping the run in `run_dir`, or None when it did not stop it."""
    try:
        data = json.loads((Path(run_dir) / STOP_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def append_anomaly(run_dir: Path, anomaly: Any) -> None:
    """Append one anomaly to RUN_DIR/diagnostics.jsonl as a whole line (one write to an O_APPEND file)."""
    record = {**anomaly.to_dict(), "time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())}
    line = json.dumps(record, default=str) + "\n"  # a NaN value stays NaN (Python's json reads it back)
    fd = os.open(Path(run_dir) / ANOMALIES_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


class Monitor:
    """One run's monitor; `poll()` reads what is new, reports and acts; `run()` loops until the job is gone."""

    def __init__(self, run_dir: Path, config: Any, pid: int | None, group: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.config = config
        self.pid = pid
        self.group = group
        self.reader = metrics.MetricsReader(self.run_dir / "metrics.jsonl")
        self.detector = rules.Detector(config)
        self.stopped = False
        self._ending = False
        self._wandb_run: Any = None
        for earlier in metrics.attempt_files(self.reader.current)[:-1]:  # earlier attempts: history only
            self.detector.feed_all(metrics.read_jsonl(earlier))
            self.reader.skip(earlier)
        self.detector.anomalies.clear()
        self.detector.fired.clear()  # a rule may fire again on the new steps

    def poll(self, final: bool = False) -> list[Any]:
        fired = self.detector.feed_all(self.reader.read(final=final))
        for anomaly in fired:
            append_anomaly(self.run_dir, anomaly)
            print(f"{PREFIX}{anomaly.action}: {anomaly.line()}", flush=True)
            self.alert(anomaly)
            if anomaly.action == rules.STOP and not self.stopped:
                self.stop(anomaly)
        return list(fired)

    def alert(self, anomaly: Any) -> None:
        """A W&B alert for `anomaly` when the run logs to W&B (best effort: a failure is a line in train.log)."""
        settings = self.config.wandb
        if not settings:
            return
        try:
            if self._wandb_run is None:
                import wandb

                self._wandb_run = wandb.init(
                    project=settings.get("project"),
                    entity=settings.get("entity"),
                    group=settings.get("group"),
                    name=f"{settings.get('name') or self.run_dir.name}-diagnostics",
                    job_type="diagnostics",
                    mode=settings.get("mode") or "offline",
                    dir=str(self.run_dir),
                )
            level = "ERROR" if anomaly.action == rules.STOP else "WARN"
            title = f"{settings.get('name') or self.run_dir.name}: {anomaly.rule} at step {anomaly.step}"
            self._wandb_run.alert(title=title, text=anomaly.line(), level=level)
        except Exception as e:  # noqa: BLE001 - an alert never stops the monitor
            print(f"{PREFIX}W&B alert not sent ({type(e).__name__}: {e})", flush=True)

    def close(self) -> None:
        if self._wandb_run is not None:
            self._wandb_run.finish()
            self._wandb_run = None

    def stop(self, anomaly: Any) -> None:
        self.stopped = True
        reason = anomaly.to_dict()
        text = json.dumps(reason, default=str)
        tmp = self.run_dir / f".{STOP_FILE}.tmp"
        tmp.write_text(text + "\n")
        os.replace(tmp, self.run_dir / STOP_FILE)
        print(f"{STOP_MARKER}{text}", flush=True)
        if self.pid is None:
            return
        try:
            if self.group:
                os.killpg(self.pid, signal.SIGTERM)
            else:
                os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def job_alive(self) -> bool:
        if self.pid is None:
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def run(self) -> int:
        def on_term(signum: int, frame: FrameType | None) -> None:
            self._ending = True

        signal.signal(signal.SIGTERM, on_term)
        while not self._ending and self.job_alive():
            self.poll()
            deadline = time.monotonic() + self.config.poll_s
            while not self._ending and time.monotonic() < deadline:
                time.sleep(min(0.2, self.config.poll_s))
        self.poll(final=True)
        self.close()
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the diagnostics rules beside a job (see the module docstring).")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--config", type=Path, required=True, help="the diagnostics config as JSON")
    parser.add_argument("--pid", type=int, default=None, help="the job (wrapper) to stop, and to outlive no longer")
    parser.add_argument("--group", action="store_true", help="signal PID's process group, not PID alone")
    args = parser.parse_args(argv)
    try:
        config = rules.config_from_dict(json.loads(args.config.read_text()))
    except (OSError, ValueError) as e:
        print(f"{PREFIX}not monitoring: {args.config}: {e}", file=sys.stderr, flush=True)
        return 2
    if not config.enabled:
        return 0
    return Monitor(args.run_dir, config, args.pid, args.group).run()


if __name__ == "__main__":
    sys.exit(main())
