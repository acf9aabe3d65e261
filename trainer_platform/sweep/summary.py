"""A sweep's outcome from its directory alone: each run's swept values, state and metric, the best run, and each
axis against the metric (mean and best per value). Pure reading; `trainer-platform sweep` renders it."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer_platform.runs import RunDir, RunDirError
from trainer_platform.sweep.manifest import read_manifest
from trainer_platform.sweep.objective import Objective, better, default_objective, run_value


@dataclass
class RunRow:
    name: str
    values: dict[str, str]
    state: str
    value: float | None = None
    step: int | None = None
    # why the run stopped early (a diagnostics rule: a pruned trial)
    stop_reason: str | None = None


@dataclass
class AxisRow:
    value: str
    runs: int
    scored: int
    mean: float | None
    best: float | None


@dataclass
class SweepSummary:
    path: Path
    manifest: dict[str, Any]
    objective: Objective
    runs: list[RunRow] = field(default_factory=list)

    @property
    def axes(self) -> list[str]:
        return list(self.manifest.get("axes") or {})

    @property
    def best(self) -> RunRow | None:
        scored = [r for r in self.runs if r.value is not None]
        if not scored:
            return None
        top = scored[0]
        for row in scored[1:]:
            if better(row.value, top.value, self.objective.mode):  # type: ignore[arg-type]
                top = row
        return top

    def by_axis(self, key: str) -> list[AxisRow]:
        """Each value of axis `key` (in the manifest's order) with the runs that had it and their metric."""
        listed = [str(v) for v in (self.manifest.get("axes") or {}).get(key, [])]
        seen = [r.values[key] for r in self.runs if key in r.values]
        rows = []
        for value in dict.fromkeys([*listed, *seen]):
            runs = [r for r in self.runs if r.values.get(key) == value]
            if not runs:
                continue
            scores = [r.value for r in runs if r.value is not None]
            pick = min if self.objective.mode == "min" else max
            rows.append(
                AxisRow(
                    value,
                    len(runs),
                    len(scores),
                    statistics.fmean(scores) if scores else None,
                    pick(scores) if scores else None,
                )
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        top = self.best
        return {
            "sweep": str(self.path),
            "name": self.manifest.get("name"),
            "objective": {
                "metric": list(self.objective.names),
                "reduce": self.objective.reduce,
                "mode": self.objective.mode,
            },
            "best": top.name if top else None,
            "runs": [vars(r) for r in self.runs],
            "axes": {key: [vars(a) for a in self.by_axis(key)] for key in self.axes},
        }


def summarize_sweep(path: Path | str, objective: Objective | None = None) -> SweepSummary:
    """Read a sweep dir (SweepDirError when it is none) into its summary, scored by `objective` (default: the
    search's objective from the manifest, else the algorithm's main metric)."""
    from launchers.base import UnknownLauncherError
    from trainer_platform.cli.common import launcher_state
    from trainer_platform.console.view import run_facts

    folder = Path(path).expanduser().absolute()
    manifest = read_manifest(folder)
    rows: list[RunRow] = []
    runs: list[RunDir] = []
    for entry in manifest["runs"]:
        run = RunDir(folder / str(entry.get("name")))
        try:
            RunDir.open(run.path)
            state = launcher_state(run)
        except (RunDirError, UnknownLauncherError, OSError):
            state = "missing"
        values = {str(k): str(v) for k, v in (entry.get("values") or {}).items()}
        rows.append(RunRow(name=str(entry.get("name")), values=values, state=state))
        runs.append(run)
    if objective is None:
        saved = manifest.get("objective")
        if isinstance(saved, dict):
            objective = Objective.model_validate(saved)
        else:
            kind = next((run_facts(r)[0] for r, row in zip(runs, rows, strict=True) if row.state != "missing"), None)
            objective = default_objective(kind)
    for run, row in zip(runs, rows, strict=True):
        if row.state == "missing":
            continue
        scored = run_value(run, objective)
        if scored is not None:
            row.value, row.step = scored
        reason = run.read_status().extra.get("stop_reason")
        if isinstance(reason, dict):
            row.stop_reason = f"{reason.get('rule')} at step {reason.get('step')}"
    return SweepSummary(folder, manifest, objective, rows)
