"""`trainer-platform show RUN`: everything a run dir says about a run, on one screen: spec summary, status, last
and best metrics, checkpoints, plan, launcher handle, lineage (surgery and resume)."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from trainer_platform.cli.common import fmt_duration, fmt_time, launcher_state, row, state_text
from trainer_platform.console.keys import fmt, key_metrics
from trainer_platform.console.view import run_facts
from trainer_platform.runs import RunDir
from trainer_platform.runs.series import best, curves, last
from trainer_platform.runs.specs import flatten, load_spec, show_value

NAME = "show"
HELP = "one run in full: spec summary, status, last and best metrics, checkpoints, plan, launcher handle, lineage"
ORDER = 12

# spec keys the summary shows when the run's spec has them (in this order)
SUMMARY_KEYS = (
    "algorithm.name", "algorithm.estimator", "algorithm.lr", "algorithm.batch_size", "algorithm.mini_batch_size",
    "algorithm.rollout_n", "algorithm.kl_coef", "algorithm.beta", "algorithm.loss_type", "train.steps", "train.seed",
    "model.name", "model.path", "data.name", "data.dir", "compute.name", "launcher.name", "resume_dir",
)  # fmt: skip
_STEP_DIR = re.compile(r"^global_step_(\d+)$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir")


def _section(out: Console, title: str) -> Table:
    out.print(Text(title, style="bold underline"))
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    return table


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def checkpoint_steps(run: RunDir) -> list[int]:
    """Steps of the checkpoint folders verl wrote (global_step_N), oldest first."""
    try:
        return sorted(int(m.group(1)) for p in run.checkpoints_dir.iterdir() if (m := _STEP_DIR.match(p.name)))
    except OSError:
        return []


def metric_rows(run: RunDir, kind: str | None) -> list[tuple[str, str, str, str]]:
    """(label, metric name, last `value @step`, best `value @step`) of each key metric the run logged."""
    found = curves(run.read_metrics())
    rows = []
    for metric in key_metrics(kind):
        name = next((n for n in metric.names if n in found), None)
        if name is None:
            continue
        final, top = last(found[name]), best(found[name], metric.better)
        rows.append(
            (
                metric.label,
                name,
                f"{fmt(final.value)} @{final.step}" if final else "-",
                f"{fmt(top.value)} @{top.step}" if top else "-",
            )
        )
    return rows


def run(args: argparse.Namespace, out: Console) -> int:
    run_dir = RunDir.open(args.run_dir)
    status = run_dir.read_status()
    kind, target, _ = run_facts(run_dir)
    flat = flatten(load_spec(run_dir.spec_path))

    t = _section(out, "run")
    row(t, "path", str(run_dir.path))
    row(t, "state", state_text(launcher_state(run_dir)))
    row(t, "exit code", "-" if status.exit_code is None else str(status.exit_code))
    row(t, "created / started", f"{fmt_time(status.created)} / {fmt_time(status.started)}")
    row(t, "finished", f"{fmt_time(status.finished)} ({fmt_duration(status.duration_s())})")
    if status.host:
        row(t, "host / pid", f"{status.host} / {status.pid}")
    for key in ("error", "stop_reason"):
        value = status.extra.get(key)
        if isinstance(value, dict):  # a diagnostics rule that stopped the run: rule, step, message
            value = f"{value.get('rule', '?')} at step {value.get('step', '?')}: {value.get('message', '')}".rstrip(
                ": "
            )
        if value:
            row(t, key.replace("_", " "), Text(str(value), style="red"))
    out.print(t)

    t = _section(out, "spec" + ("" if flat else " (no spec.yaml)"))
    for key in SUMMARY_KEYS:
        if key in flat and flat[key] is not None:
            row(t, key, show_value(flat[key]))
    out.print(t)

    t = _section(out, "metrics")
    step, _ = run_dir.latest_metrics()
    row(t, "step", f"{'-' if step is None else step} of {'-' if target is None else target}")
    rows = metric_rows(run_dir, kind)
    if rows:
        metrics = Table(box=None, pad_edge=False)
        for column in ("metric", "name", "last", "best"):
            metrics.add_column(column, no_wrap=True)
        for cells in rows:
            row(metrics, *cells)
        t.add_row(Text("key metrics"), metrics)
    out.print(t)

    t = _section(out, "checkpoints")
    steps = checkpoint_steps(run_dir)
    latest = run_dir.last_checkpoint_step()
    row(t, "saved steps", ", ".join(map(str, steps)) or "-")
    row(t, "latest complete", "-" if latest is None else f"step {latest} ({run_dir.checkpoints_location()})")
    out.print(t)

    plan = _read_json(run_dir.path / "plan.json")
    if plan:
        t = _section(out, "plan")
        shape = f"{plan.get('nnodes', '?')} node(s) x {plan.get('gpus_per_node', '?')} {plan.get('accelerator', '')}"
        row(t, "compute", f"{shape}, rollout {plan.get('rollout_engine', '-')} (tp {plan.get('rollout_tp', '-')})")
        memory = plan.get("memory") or {}
        if memory:
            row(t, "memory", f"{memory.get('verdict', '-')}: peak {memory.get('peak_gib', '-')} GiB "
                f"of {memory.get('capacity_gib', '-')} GiB at {memory.get('peak_phase', '-')}")  # fmt: skip
        for note in plan.get("notes", []):
            row(t, "note", str(note))
        out.print(t)

    t = _section(out, "launcher")
    handle = run_dir.load_handle()
    row(t, "launcher", str((handle or {}).get("launcher") or status.extra.get("launcher", "-")))
    for key, value in sorted(((handle or {}).get("data") or {}).items()):
        row(t, f"  {key}", show_value(value))
    if handle is None:
        row(t, "handle", "- (never submitted)")
    row(t, "W&B run id", run_dir.wandb_run_id or "-")
    out.print(t)

    lineage = _read_json(run_dir.path / "lineage.json")
    surgery = _read_json(run_dir.path / "surgery.json")
    if lineage or surgery or flat.get("resume_dir"):
        t = _section(out, "lineage")
        if flat.get("resume_dir"):
            row(t, "resumed from", str(flat["resume_dir"]))
        if surgery:
            row(t, "trains from", str(surgery.get("model", "-")))
        for i, step_info in enumerate((lineage or {}).get("steps", []), 1):
            inputs = ", ".join(str(x.get("path")) for x in step_info.get("inputs", []) if isinstance(x, dict))
            row(t, f"surgery {i}", f"{step_info.get('op', '?')} <- {inputs or '-'}")
        if lineage and lineage.get("output"):
            row(t, "surgery output", f"{lineage['output']} ({lineage.get('created', '-')})")
        out.print(t)
    return 0
