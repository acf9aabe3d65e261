"""A run as the console sees it, built from its run directory alone: what its files say now, read incrementally.

`RunWatch.poll()` reads what was added to status.json, metrics.jsonl and train.log since the last call and returns
what happened (phases begun, steps logged, log lines). It records the time it first saw each phase in status.json
(`phases`: phase -> UTC time; the pipeline writes `preparing` itself), so that later readers (the end-of-run
summary, `status`) can split start-up from training time. A run already finished when watching starts is only read.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import yaml

from trainer_platform.console.keys import KeyMetric, key_metrics
from trainer_platform.console.logscan import PHASE_LABELS, PHASES, STARTING_NO_RAY, LogScan, Tail
from trainer_platform.diagnostics.rules import Detector, DiagnosticsConfig
from trainer_platform.runs import RUNNING, RunDir, Status


@dataclass(frozen=True)
class Event:
    # "phase" (name = phase), "step" (step, values = key metric values), "log" (text = a train.log line), or
    # "anomaly" (name = rule, step, text = the anomaly's line)
    kind: str
    name: str = ""
    step: int = 0
    values: Mapping[str, float | None] = field(default_factory=dict)
    text: str = ""
    # seconds since the run began (its `preparing` time, else its start) when this happened; None when unknown
    # (a finished run read afterwards: only the phase times recorded in status.json are known)
    at_s: float | None = None


def parse_time(value: Any) -> datetime | None:
    """A UTC ISO time from status.json; None when missing or not a time (a hand-edited or corrupt file)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def run_facts(run: RunDir) -> tuple[str | None, int | None, bool]:
    """(algorithm kind, total optimizer steps, whether the job uses Ray) from spec.yaml and job.json; None when
    a file does not say."""
    kind: str | None = None
    try:
        spec = yaml.safe_load(run.spec_path.read_text())
        kind = spec["algorithm"]["kind"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        pass
    return (kind, *job_facts(run))


def job_facts(run: RunDir) -> tuple[int | None, bool]:
    """(total optimizer steps, whether the job uses Ray) from job.json; None/False when it does not say."""
    total: int | None = None
    uses_ray = False
    try:
        job = json.loads(run.job_path.read_text())
        uses_ray = bool(job.get("uses_ray"))
        for arg in job.get("argv", []):
            if isinstance(arg, str) and arg.lstrip("+").startswith("trainer.total_training_steps="):
                value = arg.split("=", 1)[1]
                total = int(value) if value.isdigit() else None  # the last one wins, as in Hydra
    except (OSError, ValueError, AttributeError):
        pass
    return total, uses_ray


def phase_label(phase: str, uses_ray: bool) -> str:
    return STARTING_NO_RAY if phase == "starting" and not uses_ray else PHASE_LABELS[phase]


def _rank(phase: str | None) -> int:
    return PHASES.index(phase) if phase in PHASES else -1


# values kept per key metric for its trend sparkline
TREND_POINTS = 40


class RunWatch:
    """Follows one run directory; see the module docstring. `clock` gives the current time (seconds since epoch)."""

    def __init__(
        self,
        run: RunDir,
        *,
        with_log_lines: bool = False,
        clock: Callable[[], float] | None = None,
        diagnostics: DiagnosticsConfig | None = None,
    ) -> None:
        import time

        self.run = run
        self.kind, self.total, self.uses_ray = run_facts(run)
        self.metrics: tuple[KeyMetric, ...] = key_metrics(self.kind)
        self.with_log_lines = with_log_lines
        self.clock = clock or time.time
        self.status: Status = run.read_status()
        self.phase: str | None = None
        self.step: int | None = None
        self.latest: dict[str, float | None] = {m.label: None for m in self.metrics}
        self.log = LogScan()
        self._metrics = run.metrics_reader()
        # the rules run on each new step (anomaly events); None: not shown
        self.detector = Detector(diagnostics) if diagnostics is not None else None
        # the last values of each key metric, for trend sparklines
        self.trends: dict[str, deque[float]] = {m.label: deque(maxlen=TREND_POINTS) for m in self.metrics}
        self._log_tail = Tail(run.log_path)
        self._record = not self.status.terminal
        self._first_step: tuple[int, float] | None = None  # (step, time) of this attempt's first step
        self._last_step_at: float | None = None
        self._seen: set[str] = set()
        recorded = self.status.extra.get("phases")
        self._phase_times: dict[str, str] = dict(recorded) if isinstance(recorded, dict) else {}

    # ---- time ----------------------------------------------------------------------------------------------------

    def origin(self) -> float:
        """When the run began: its recorded `preparing` time, else its start, else when watching began."""
        for value in (self._phase_times.get("preparing"), self.status.started, self.status.created):
            when = parse_time(value)
            if when is not None:
                return when.timestamp()
        return self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.origin()

    def _now_s(self) -> float | None:
        """Seconds since the run began, for something seen now; None when reading a run that already ended."""
        return self.elapsed() if self._record else None

    def eta_s(self) -> float | None:
        """Seconds left, from the pace of this attempt's steps so far; None before two steps were seen."""
        if (
            not self._record
            or self._first_step is None
            or self.step is None
            or self.total is None
            or self._last_step_at is None
        ):
            return None
        first, since = self._first_step
        done = self.step - first
        if done <= 0:
            return None
        return max(0.0, (self._last_step_at - since) / done * (self.total - self.step))

    # ---- reading -------------------------------------------------------------------------------------------------

    def poll(self, final: bool = False) -> list[Event]:
        """What happened since the last poll. `final`: the run has ended, read the files to their very end."""
        self.status = self.run.read_status()
        events: list[Event] = []
        recorded = self.status.extra.get("phases")
        if isinstance(recorded, dict):
            self._phase_times = {**recorded, **self._phase_times}
        if self.phase is None and "preparing" in self._phase_times:
            events += self._enter("preparing")
        if self.status.state == RUNNING or self.status.terminal:
            events += self._enter("starting")
        log_lines = self._log_tail.rest() if final else self._log_tail.read()
        for line in log_lines:
            if self.with_log_lines:
                events.append(Event("log", text=line, at_s=self._now_s()))
            for phase in self.log.feed([line]):
                events += self._enter(phase)
        for record in self._metrics.read(final=final):
            events += self._metrics_record(record)
        return events

    def _metrics_record(self, record: dict[str, Any]) -> list[Event]:
        data: dict[str, Any] = record["data"]
        for metric in self.metrics:
            value = metric.value(data)
            if value is not None:
                self.latest[metric.label] = value
                self.trends[metric.label].append(value)
        anomalies = [
            Event("anomaly", name=a.rule, step=a.step, text=a.line(), at_s=self._now_s())
            for a in (self.detector.feed(record) if self.detector is not None else [])
        ]
        step = record.get("step")
        if not isinstance(step, int) or step < 1 or (self.step is not None and step <= self.step):
            return anomalies
        events = self._enter("training")
        now = self.clock()
        self.step = step
        if self._first_step is None:
            self._first_step = (step, now)
        self._last_step_at = now
        values = {m.label: m.value(data) for m in self.metrics}
        return [*events, Event("step", step=step, values=values, at_s=self._now_s()), *anomalies]

    def _enter(self, phase: str) -> list[Event]:
        """Move to `phase` if it comes later than the current one (or is training again after a save)."""
        if not (_rank(phase) > _rank(self.phase) or (self.phase == "saving" and phase == "training")):
            return []
        again = phase in self._seen
        self.phase = phase
        self._seen.add(phase)
        if phase not in self._phase_times and self._record:
            self._phase_times[phase] = datetime.fromtimestamp(self.clock(), timezone.utc).isoformat(timespec="seconds")
            self.run.write_status(phases=dict(self._phase_times))
        if again and phase == "training":
            return []  # back to training after a checkpoint: no new phase line
        return [Event("phase", name=phase, at_s=self._phase_at(phase))]

    def _phase_at(self, phase: str) -> float | None:
        when = parse_time(self._phase_times.get(phase)) if phase != "saving" else None
        return when.timestamp() - self.origin() if when is not None else self._now_s()
