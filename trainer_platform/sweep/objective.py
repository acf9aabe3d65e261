"""What a sweep is scored by: a metric of each run's metrics.jsonl, its best or final value, and which way is better.
Read for the sweep summary and as an Optuna trial's objective."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from trainer_platform.runs import RunDir
from trainer_platform.runs.series import best, curves, last


class Objective(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # the metric of metrics.jsonl to score by, e.g. val/loss or critic/score/mean (the first one logged wins when
    # several are given)
    metric: str | tuple[str, ...]
    # best: the best value over the run's steps; final: the value at its last logged step
    reduce: Literal["best", "final"] = "final"
    # whether lower (min) or higher (max) is better
    mode: Literal["min", "max"] = "min"
    # a short name for tables (the console's label of a key metric)
    label: str | None = Field(default=None, exclude=True)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.metric,) if isinstance(self.metric, str) else tuple(self.metric)

    @property
    def title(self) -> str:
        return f"{self.reduce} {self.label or self.names[0]} ({self.mode})"


def run_value(run: RunDir, objective: Objective) -> tuple[float, int] | None:
    """(value, step) of `objective` in a run's metrics (every attempt), or None when it logged none (finite)."""
    found = curves(run.read_metrics(), objective.names)
    curve = next((found[name] for name in objective.names if name in found), None)
    if not curve:
        return None
    point = best(curve, objective.mode) if objective.reduce == "best" else last(curve)
    if point is None or not math.isfinite(point.value):
        return None
    return point.value, point.step


def default_objective(kind: str | None) -> Objective:
    """The algorithm kind's main metric (the first key metric of the console), final value."""
    from trainer_platform.console.keys import key_metrics

    metric = key_metrics(kind)[0]
    return Objective(metric=metric.names, mode=metric.better or "min", label=metric.label)


def better(a: float, b: float, mode: str) -> bool:
    """Whether `a` beats `b`."""
    return a < b if mode == "min" else a > b
