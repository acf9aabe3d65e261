"""What a report plots, as plotly figure specs (plain JSON data + layout): the metric curves of one or more runs,
and for a sweep each swept parameter against the objective.

The curves come from verl 0.9.1's own metric names (RL trainer, SFT trainer, our DPO trainer; see
tests/console/runs/*/metrics.jsonl): a panel shows every logged key that matches one of its patterns.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trainer_platform.runs.series import Curves


@dataclass(frozen=True)
class Panel:
    # panel title and y-axis label
    title: str
    # metric-name globs, in order; every logged key that matches one is a trace. "a|b" are alternatives: only the
    # first of them a run logged is plotted (verl logs the same quantity under both)
    patterns: tuple[str, ...]
    # plot the y axis on a log scale (values spanning orders of magnitude)
    log_y: bool = False


PANELS: tuple[Panel, ...] = (
    Panel("Loss", ("actor/pg_loss", "actor/loss", "critic/vf_loss", "train/loss", "val/loss")),
    Panel(
        "Reward / score",
        (
            "critic/rewards/mean|critic/score/mean",
            "val-core/*/reward/mean@*",
            "val-core/*/score/mean@*",
            "val-core/*/acc/mean@*",
        ),
    ),
    Panel(
        "Preference accuracy and margin (DPO)",
        ("train/rewards/accuracy", "train/rewards/margin", "val/rewards/accuracy", "val/rewards/margin"),
    ),  # fmt: skip
    Panel("KL", ("actor/kl_loss", "actor/ppo_kl", "actor/reward_kl_penalty", "rollout_corr/kl")),
    Panel("Entropy", ("actor/entropy",)),
    Panel("Response length (tokens)", ("response_length/mean", "response_length/max")),
    Panel("Gradient norm", ("actor/grad_norm", "critic/grad_norm", "train/grad_norm")),
    Panel("Learning rate", ("actor/lr", "critic/lr", "train/lr")),
    Panel("Throughput (tokens/s)", ("perf/throughput",)),
    Panel("Step time (s)", ("timing_s/step", "perf/time_per_step")),
    Panel("Rollout vs actor probabilities", ("training/rollout_probs_diff_max", "training/rollout_probs_diff_mean")),
)

# plotly's default colours, one per run (a run keeps its colour in every panel)
_COLOURS = (
    "#636efa",
    "#ef553b",
    "#00cc96",
    "#ab63fa",
    "#ffa15a",
    "#19d3f3",
    "#ff6692",
    "#b6e880",
    "#ff97ff",
    "#fecb52",
)
_DASHES = ("solid", "dot", "dash", "longdash", "dashdot")


def finite(value: float | None) -> float | None:
    """JSON has no NaN or Infinity: such points become gaps."""
    return value if value is not None and math.isfinite(value) else None


def matching_keys(panel: Panel, keys: Sequence[str]) -> list[str]:
    """The keys of one run's metrics that `panel` plots, in pattern order."""
    out: list[str] = []
    for alternatives in panel.patterns:
        for pattern in alternatives.split("|"):
            found = [k for k in sorted(keys) if fnmatch.fnmatchcase(k, pattern) and k not in out]
            out += found
            if found:
                break
    return out


def curve_figures(runs: Mapping[str, Curves]) -> list[dict[str, Any]]:
    """One figure per panel that any run logged, a trace per run and matching key (colour = run, dash = key)."""
    figures = []
    for panel in PANELS:
        traces = []
        for r, (run, found) in enumerate(runs.items()):
            for k, key in enumerate(matching_keys(panel, list(found))):
                curve = found.get(key)
                if not curve:
                    continue
                name = key if len(runs) == 1 else f"{run} · {key}"
                traces.append(
                    {
                        "type": "scatter",
                        "mode": "lines+markers" if len(curve) < 40 else "lines",
                        "name": name,
                        "x": list(curve),
                        "y": [finite(v) for v in curve.values()],
                        "line": {"color": _COLOURS[r % len(_COLOURS)], "dash": _DASHES[k % len(_DASHES)]},
                        "marker": {"size": 5},
                    }
                )
        if traces:
            y_title = panel.title if len(panel.title) <= 24 else ""  # a long title already says it
            figures.append(_figure(panel.title, traces, x_title="step", y_title=y_title, log_y=panel.log_y))
    return figures


def _numbers(values: Sequence[str]) -> list[float] | None:
    try:
        return [float(v) for v in values]
    except ValueError:
        return None


def parameter_figures(rows: Sequence[Mapping[str, Any]], axes: Sequence[str], metric: str) -> list[dict[str, Any]]:
    """For each swept parameter, the objective of every scored run against its value (numbers on a numeric axis,
    log-scaled when they span more than 100x; anything else as categories). `rows`: name, values, value."""
    figures = []
    scored = [r for r in rows if r.get("value") is not None and math.isfinite(r["value"])]
    for axis in axes:
        xs = [str(r["values"].get(axis, "")) for r in scored]
        numeric = _numbers(xs)
        log_x = bool(numeric) and min(numeric or [0]) > 0 and max(numeric or [0]) / min(numeric or [1]) > 100
        trace = {
            "type": "scatter",
            "mode": "markers",
            "name": metric,
            "x": numeric if numeric is not None else xs,
            "y": [r["value"] for r in scored],
            "text": [r["name"] for r in scored],
            "hovertemplate": "%{text}<br>" + axis + "=%{x}<br>" + metric + "=%{y}<extra></extra>",
            "marker": {"size": 10, "color": _COLOURS[0]},
        }
        layout_x = {"type": "log" if log_x else ("linear" if numeric is not None else "category")}
        figures.append(_figure(f"{axis} → {metric}", [trace], x_title=axis, y_title=metric, x_axis=layout_x))
    return figures


def _figure(
    title: str,
    traces: list[dict[str, Any]],
    *,
    x_title: str,
    y_title: str,
    log_y: bool = False,
    x_axis: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "title": title,
        "data": traces,
        "layout": {
            "title": {"text": title, "font": {"size": 15}, "x": 0.01, "xanchor": "left"},
            "xaxis": {"title": {"text": x_title}, **(x_axis or {})},
            "yaxis": {"title": {"text": y_title}, "type": "log" if log_y else "linear"},
            "margin": {"l": 60, "r": 20, "t": 45, "b": 45},
            "legend": {"orientation": "h", "yanchor": "top", "y": -0.22},
            "height": 380,
            "paper_bgcolor": "#ffffff",
            "plot_bgcolor": "#f4f6fa",
        },
    }
