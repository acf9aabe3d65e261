"""`trainer-platform compare RUN RUN...`: the diff of the runs' resolved specs (flattened keys, training keys first)
and their key metrics side by side: final, best, and at a step every run reached."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

from trainer_platform.cli.common import CliError, row
from trainer_platform.console.keys import KeyMetric, fmt, key_metrics
from trainer_platform.console.view import run_facts
from trainer_platform.runs import RunDir
from trainer_platform.runs.series import Curves, at_step, best, curves, last
from trainer_platform.runs.specs import diff, is_bookkeeping, load_spec, show_value

NAME = "compare"
HELP = "diff of runs' resolved specs (training keys first) and their metrics side by side (final, best, equal step)"
ORDER = 14


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN")
    parser.add_argument("--all", action="store_true", help="list every spec key, not only those that differ")
    parser.add_argument("--step", type=int, help="the step to compare at (default: the last step every run reached)")


def short_names(runs: Sequence[RunDir]) -> list[str]:
    """The runs' paths relative to their common folder (their own names when that is unique)."""
    names = [r.path.name for r in runs]
    if len(set(names)) == len(names):
        return names
    common = os.path.commonpath([str(r.path) for r in runs])
    return [os.path.relpath(r.path, common) for r in runs]


def metric_union(kinds: Sequence[str | None]) -> list[KeyMetric]:
    seen: dict[str, KeyMetric] = {}
    for kind in kinds:
        for metric in key_metrics(kind):
            seen.setdefault(metric.label + "|" + ",".join(metric.names), metric)
    return list(seen.values())


def _curve(found: Curves, metric: KeyMetric) -> dict[int, float]:
    name = next((n for n in metric.names if n in found), None)
    return found[name] if name else {}


def _cells(values: list[float | None], better: Literal["max", "min"] | None) -> list[Text]:
    """Formatted values; the best of them in bold green when the metric has a better direction."""
    present = [v for v in values if v is not None]
    winner = (max(present) if better == "max" else min(present)) if better and len(present) > 1 else None
    return [
        Text("-" if v is None else fmt(v), style="bold green" if winner is not None and v == winner else "")
        for v in values
    ]


def run(args: argparse.Namespace, out: Console) -> int:
    if len(args.run_dirs) < 2:
        raise CliError("compare needs at least two run dirs, e.g. compare runs/a runs/b")
    runs = [RunDir.open(p) for p in args.run_dirs]
    names = short_names(runs)
    specs = [load_spec(r.spec_path) for r in runs]
    for r, spec in zip(runs, specs, strict=True):
        if not spec:
            raise CliError(f"{r.spec_path} is missing or not a mapping; compare needs each run's spec.yaml")

    rows = diff(specs, everything=args.all)
    t = Table(title=f"spec: {sum(1 for _ in rows)} keys {'listed' if args.all else 'differ'}", title_justify="left")
    t.add_column("key", style="bold", no_wrap=True)
    for name in names:
        t.add_column(name, overflow="fold")
    for key, values in rows:
        row(t, Text(key, style="dim" if is_bookkeeping(key) else "bold"), *(show_value(v) for v in values))
    out.print(t if rows else Text("spec: identical"))

    found = [curves(r.read_metrics()) for r in runs]
    kinds = [run_facts(r)[0] for r in runs]
    last_steps = [max((max(c) for c in f.values() if c), default=None) for f in found]
    reached = [s for s in last_steps if s is not None]
    step = args.step if args.step is not None else (min(reached) if len(reached) == len(runs) else None)
    t = Table(title="metrics" + (f" (equal step: {step})" if step is not None else ""), title_justify="left")
    t.add_column("metric", style="bold", no_wrap=True)
    t.add_column("", no_wrap=True)
    for name in names:
        t.add_column(name, no_wrap=True)
    row(t, "step", "last", *("-" if s is None else str(s) for s in last_steps))
    for metric in metric_union(kinds):
        per_run = [_curve(f, metric) for f in found]
        if not any(per_run):
            continue
        finals = [p.value if (p := last(c)) else None for c in per_run]
        row(t, metric.label, "final", *_cells(finals, metric.better))
        if metric.better:
            bests = [p.value if (p := best(c, metric.better)) else None for c in per_run]
            row(t, "", f"best ({metric.better})", *_cells(bests, metric.better))
        if step is not None:
            row(t, "", f"@{step}", *_cells([at_step(c, step) for c in per_run], metric.better))
    out.print(t)
    return 0
