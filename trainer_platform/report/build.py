"""`report RUN|SWEEP`: gather what a run dir (or a folder of run dirs) says and render it as one HTML page.

A sweep is any folder of run dirs. Its swept values come from its manifest (sweep.json, written by `train.py -m`;
read through trainer_platform.sweep) when there is one, else from the spec keys that differ between its runs; it is
scored by the manifest's objective, else the algorithm's main metric (final value).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from trainer_platform.console.keys import fmt
from trainer_platform.report.figures import curve_figures, parameter_figures
from trainer_platform.report.page import render, table
from trainer_platform.runs import RunDir, RunDirError
from trainer_platform.runs.index import walk_run_dirs
from trainer_platform.runs.series import Curves, curves, last
from trainer_platform.runs.specs import flatten, load_spec, show_value, swept_keys
from trainer_platform.sweep.summary import RunRow

# spec keys the run summary table shows when present
_SUMMARY_KEYS = ("algorithm.name", "algorithm.lr", "algorithm.batch_size", "algorithm.rollout_n", "algorithm.kl_coef",
                 "model.name", "data.name", "train.steps", "train.seed", "compute.name", "launcher.name")  # fmt: skip


class ReportError(Exception):
    """The target cannot be reported on; the message names it and what to pass instead."""


@dataclass
class SweepView:
    """What a sweep report shows: the swept keys, each run's values and score, and how it is scored."""

    axes: list[str]
    objective_title: str
    mode: str
    rows: list[RunRow] = field(default_factory=list)
    source: str = ""

    def ranked(self) -> list[RunRow]:
        scored = [r for r in self.rows if r.value is not None and math.isfinite(r.value)]
        sign = 1.0 if self.mode == "min" else -1.0
        scored.sort(key=lambda r: sign * (r.value or 0.0))
        return scored + [r for r in self.rows if r not in scored]


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def run_report(run: RunDir) -> str:
    status = run.read_status()
    flat = flatten(load_spec(run.spec_path))
    found = curves(run.read_metrics())
    step = max((max(c) for c in found.values() if c), default=None)
    rows = [("state", status.state), ("last step", step), ("created", status.created), ("finished", status.finished)]
    rows += [(key, show_value(flat[key])) for key in _SUMMARY_KEYS if key in flat and flat[key] is not None]
    figures = curve_figures({run.name: found})
    if not figures:
        raise ReportError(f"{run.metrics_path} has no metrics to plot yet; report the run once it has logged a step")
    return render(
        f"Run report: {run.name}",
        f"{run.path} · generated {_now()}",
        [("Run", table(("field", "value"), rows))],
        figures,
        [("Final values", _finals_table({run.name: found}))],
    )


def _finals_table(runs: dict[str, Curves]) -> str:
    keys = sorted({k for found in runs.values() for k in found})
    names = list(runs)
    lines = []
    for key in keys:
        points = [last(runs[n].get(key, {})) for n in names]
        if any(points):
            lines.append([key, *(f"{fmt(p.value)} @{p.step}" if p else "-" for p in points)])
    return table(("metric", *names), lines)


def _manifest_view(folder: Path) -> SweepView:
    from trainer_platform.sweep.summary import summarize_sweep

    summary = summarize_sweep(folder)
    return SweepView(
        summary.axes, summary.objective.title, summary.objective.mode, summary.runs, f"{folder}/sweep.json"
    )


def _spec_view(folder: Path, runs: list[RunDir]) -> SweepView:
    from trainer_platform.sweep.objective import default_objective, run_value

    specs = [load_spec(r.spec_path) for r in runs]
    axes = swept_keys(specs)
    kind = next((s.get("algorithm", {}).get("kind") for s in specs if isinstance(s.get("algorithm"), dict)), None)
    objective = default_objective(kind)
    rows = []
    for run, spec in zip(runs, specs, strict=True):
        flat = flatten(spec)
        try:
            state = run.read_status().state
        except RunDirError:
            state = "unreadable"
        scored = run_value(run, objective)
        rows.append(
            RunRow(
                str(run.path.relative_to(folder)),
                {axis: show_value(flat.get(axis)) for axis in axes},
                state,
                *(scored or (None, None)),
            )
        )
    return SweepView(axes, objective.title, objective.mode, rows, "the spec keys that differ between its runs")


def sweep_report(folder: Path) -> str:
    runs = [RunDir(folder / rel) for rel, _ in walk_run_dirs(folder)]
    if not runs:
        raise ReportError(f"{folder} holds no run dirs; pass a run dir or a sweep folder (run_root/<sweep>)")
    view = _manifest_view(folder) if (folder / "sweep.json").is_file() else _spec_view(folder, runs)
    ranked = view.ranked()
    ranking = table(
        ("rank", "run", *view.axes, "state", view.objective_title, "step"),
        [
            [
                i + 1 if r.value is not None else "-",
                r.name,
                *(r.values.get(a) for a in view.axes),
                r.state,
                None if r.value is None else fmt(r.value),
                r.step,
            ]
            for i, r in enumerate(ranked)
        ],  # fmt: skip
        highlight=0 if ranked and ranked[0].value is not None else None,
    )
    found = {str(r.path.relative_to(folder)): curves(r.read_metrics()) for r in runs}
    figures = parameter_figures([vars(r) for r in view.rows], view.axes, view.objective_title)
    figures += curve_figures(found)
    if not figures:
        raise ReportError(f"no run under {folder} has logged metrics yet; report the sweep once runs have steps")
    axes_text = ", ".join(view.axes) or "none found"
    return render(
        f"Sweep report: {folder.name}",
        f"{folder} · {len(runs)} runs · swept: {axes_text} (from {view.source}) · generated {_now()}",
        [(f"Ranking by {view.objective_title}", ranking)],
        figures,
        [("Final values", _finals_table(found))],
    )


def build_report(target: Path) -> tuple[str, Any]:
    """(HTML, kind) for a run dir ("run") or a folder of run dirs ("sweep")."""
    target = target.expanduser().absolute()
    if not target.is_dir():
        raise ReportError(f"{target}: no such directory; pass a run dir or a sweep folder")
    if RunDir.is_run_dir(target):
        return run_report(RunDir.open(target)), "run"
    return sweep_report(target), "sweep"
