"""A plan as data (plan.json) and as a table (`trainer-platform plan`, dry runs).

The memory figures are estimates: every rendering says so.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from trainer_platform.planner.fit import ESTIMATE_NOTE
from trainer_platform.planner.plan import Plan

if TYPE_CHECKING:  # rich is imported where a table is drawn: plan.json (every run) needs none of it
    from rich.table import Table


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """Plain data for plan.json: the decisions, the chosen settings with reasons, memory per phase/role/kind."""
    out: dict[str, Any] = {k: getattr(plan, k) for k in plan.__dataclass_fields__ if k not in ("fit", "notes")}
    out["notes"] = list(plan.notes)
    out["rollout_memory_fraction"] = plan.rollout_memory_fraction if plan.rollout_engine else None
    fit = plan.fit
    if fit is None:
        out["memory"] = None
        return out
    out["memory"] = {
        "estimate": True,
        "note": ESTIMATE_NOTE,
        "capacity_gib": round(fit.capacity_gib, 2),
        "safety_margin": fit.margin,
        "verdict": fit.verdict,
        "peak_phase": fit.estimate.peak.name,
        "peak_gib": round(fit.estimate.peak.total_gib, 2),
        "kv_cache_tokens": fit.estimate.kv_tokens,
        "phases": {
            phase.name: {
                "total_gib": round(phase.total_gib, 2),
                "terms": [{"role": t.role, "kind": t.kind, "gib": round(t.gib, 3)} for t in phase.terms],
            }
            for phase in fit.estimate.phases
        },
        "settings": asdict(fit.settings),
        "reasons": [{"setting": n, "value": v, "why": why} for n, v, why in fit.reasons],
    }
    return out


def memory_table(plan: Plan) -> Table | None:
    """Per role and kind (rows) by phase (columns), with totals against the capacity."""
    from rich.table import Table
    from rich.text import Text

    fit = plan.fit
    if fit is None:
        return None
    phases = fit.estimate.phases
    table = Table(title=f"estimated memory per GPU, GiB ({plan.accelerator}, {fit.capacity_gib:.1f} GiB)")
    table.add_column("role")
    table.add_column("kind")
    for phase in phases:
        table.add_column(phase.name + (" (peak)" if phase is fit.estimate.peak else ""), justify="right")
    keys: list[tuple[str, str]] = []
    for phase in phases:
        keys += [(t.role, t.kind) for t in phase.terms if (t.role, t.kind) not in keys]
    for role, kind in keys:
        cells = []
        for phase in phases:
            gib = sum(t.gib for t in phase.terms if (t.role, t.kind) == (role, kind))
            cells.append(f"{gib:.1f}" if gib else "-")
        table.add_row(Text(role), Text(kind), *cells)
    limit = fit.capacity_gib * (1 - fit.margin)
    totals = [Text(f"{p.total_gib:.1f}", style="red" if p.total_gib > limit else "green") for p in phases]
    table.add_row(Text("total", style="bold"), Text(f"limit {limit:.1f} (margin {fit.margin:.0%})"), *totals)
    return table


def settings_table(plan: Plan) -> Table | None:
    from rich.table import Table
    from rich.text import Text

    fit = plan.fit
    if fit is None:
        return None
    table = Table(title="settings")
    for column in ("setting", "value", "why"):
        table.add_column(column)
    for name, value, why in fit.reasons:
        table.add_row(Text(name), Text(value), Text(why))
    return table


def verdict_line(plan: Plan) -> str:
    fit = plan.fit
    if fit is None:
        return "memory not estimated: the GPU's memory is unknown (set compute.gpu_memory_gib)"
    peak = fit.estimate.peak
    state = {"yes": "fits", "tight": "TIGHT", "over": "WARNING, above host memory"}[fit.verdict]
    return (
        f"{state}: peak ~{peak.total_gib:.1f} GiB per GPU ({peak.name}) of {fit.capacity_gib:.1f} GiB. {ESTIMATE_NOTE}."
    )


def plan_text(plan: Plan, width: int = 120) -> str:
    """The memory and settings tables as plain text (dry runs, logs)."""
    import io

    from rich.console import Console
    from rich.text import Text

    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False, soft_wrap=False)
    for table in (memory_table(plan), settings_table(plan)):
        if table is not None:
            console.print(table)
    console.print(Text(verdict_line(plan)))
    return buffer.getvalue().rstrip("\n")
