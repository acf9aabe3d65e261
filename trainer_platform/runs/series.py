"""A run's metrics as curves: for every metric key, its value at each step (the last record of a step wins, so a
resumed attempt that logged a step again replaces it), plus the last, best and at-a-step values of a curve."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

# key -> step -> value
Curves = dict[str, dict[int, float]]


def curves(records: Iterable[Mapping[str, Any]], keys: Iterable[str] | None = None) -> Curves:
    """The numeric curves of file-logger records `{"step": N, "data": {...}}`, optionally only `keys`.

    Records without an integer step are skipped; booleans and non-numbers are not metrics.
    """
    wanted = None if keys is None else set(keys)
    out: Curves = {}
    for record in records:
        step = record.get("step")
        data = record.get("data")
        if not isinstance(step, int) or isinstance(step, bool) or not isinstance(data, Mapping):
            continue
        for key, value in data.items():
            if wanted is not None and key not in wanted:
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out.setdefault(key, {})[step] = float(value)
    return {key: dict(sorted(points.items())) for key, points in out.items()}


@dataclass(frozen=True)
class Point:
    step: int
    value: float


def last(curve: Mapping[int, float]) -> Point | None:
    """The value at the highest step, or None for an empty curve."""
    if not curve:
        return None
    step = max(curve)
    return Point(step, curve[step])


def best(curve: Mapping[int, float], better: Literal["max", "min"] | None) -> Point | None:
    """The best finite value (earliest step on ties); None when no direction is better or nothing is finite."""
    finite = [(step, value) for step, value in curve.items() if math.isfinite(value)]
    if better is None or not finite:
        return None
    pick = max if better == "max" else min
    step, value = pick(sorted(finite), key=lambda sv: sv[1])  # sorted by step: ties go to the earliest
    return Point(step, value)


def at_step(curve: Mapping[int, float], step: int) -> float | None:
    """The value at `step`, else the latest value logged before it (a sparse metric, e.g. validation), else None."""
    if step in curve:
        return curve[step]
    before = [s for s in curve if s <= step]
    return curve[max(before)] if before else None
