"""What a dry run prints: the spec summary, the data, the plan, the batch arithmetic and the copy-pasteable command."""

from __future__ import annotations

import json
from typing import Any

from trainer_platform.batch import BatchMath
from trainer_platform.job import VerlJob
from trainer_platform.planner import Plan
from trainer_platform.spec import RunSpec


def run_summary(spec: RunSpec) -> str:
    """One line: algorithm, model, data, compute and launcher."""
    return (
        f"{spec.algorithm.name} on {spec.model.name} with {spec.data.name}, compute={spec.compute.name}, "
        f"launcher={spec.launcher.name}"
    )


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def dry_run_report(
    spec: RunSpec, the_plan: Plan, batch: BatchMath, job: VerlJob, steps: int | None, data: dict[str, Any] | None = None
) -> str:
    """The dry run's text (nothing launched). `data`: what is known about the data (data/facts.py), shown under it."""
    from trainer_platform.planner.report import plan_text

    algo = spec.algorithm
    params = spec.model.arch.params
    lines = [
        "trainer_platform dry run (nothing launched)",
        f"  algorithm  {algo.name} ({algo.kind}), lr {algo.lr}, epochs {algo.epochs}, steps {steps or 'per epochs'}",
        f"  model      {spec.model.name} ({_count(params)} params)",
        f"  data       {spec.data.name} ({spec.data.format})",
        *data_lines(data or {}),
        f"  compute    {spec.compute.name}: {the_plan.nnodes} node(s) x {the_plan.gpus_per_node} "
        f"{the_plan.accelerator}",
        f"  launcher   {spec.launcher.name}; logger {', '.join(spec.logger.backends) or 'run dir only'}",
        "plan:",
        *[f"  - {note}" for note in the_plan.notes],
        plan_text(the_plan),
        "batch arithmetic:",
        *[f"  {line}" for line in batch.lines()],
        "command:",
        job.shell_line(),
    ]
    return "\n".join(lines)


def data_lines(facts: dict[str, Any]) -> list[str]:
    """The lines under `data`: sources, mapping, cache key and state, rows, reward (data/facts.py's facts)."""
    if not facts:
        return []
    lines = []
    if facts.get("builtin"):
        lines.append(f"    source   built-in generator {facts['builtin']} (made offline into the cache)")
    for source in facts.get("sources", ()):
        if source.get("here") is False:
            where = "not on this machine"
        else:
            rows = source.get("rows")
            where = f"{source.get('kind')}, {rows} rows" if rows is not None else str(source.get("kind"))
        lines.append(f"    source   {source['split']:<6} {source['path']} ({where})")
    split = facts.get("split") or {}
    if "sources" in facts and not any(s["split"] == "val" for s in facts["sources"]):
        fraction = split.get("val_fraction") or 0
        held = f"{fraction:.0%} of train held out (seed {split.get('seed')})" if fraction else "none"
        lines.append(f"    source   val    {held}")
    if "mapping" in facts:
        mapping = facts["mapping"]
        shown = ", ".join(f"{k}={_value(v)}" for k, v in mapping.items()) or "verl's own field names"
        lines.append(f"    mapping  {shown}")
    if not facts.get("builtin"):
        lines.append(f"    cache    {_cache_state(facts)}")
    lines.append(f"    rows     {_rows_text(facts)}")
    reward = facts.get("reward")
    if reward:
        lines.append(f"    reward   {_reward_text(reward)}")
    return lines


def _value(value: Any) -> str:
    """A setting as written in YAML: text in single quotes as it is (no escapes), anything else as JSON."""
    return f"'{value}'" if isinstance(value, str) else json.dumps(value)


def _cache_state(facts: dict[str, Any]) -> str:
    if facts.get("hash") is None:
        return "key not known here: a source is not on this machine (prepared where the job runs)"
    state = "cached in" if facts.get("prepared") else "not prepared yet; a real run prepares it into"
    text = f"key {facts['hash']} (content hash): {state} {facts.get('cache_dir')}"
    if facts.get("tokenizer_here") is False:
        text += f" (the key covers the tokenizer of {facts.get('tokenizer')}, not built yet: the real key may differ)"
    return text


def _rows_text(facts: dict[str, Any]) -> str:
    rows = facts.get("rows") or {}
    if not facts.get("prepared"):
        known = [s["rows"] for s in facts.get("sources", ()) if s.get("rows") is not None]
        if known and len(known) == len(facts.get("sources", ())):
            return f"not prepared yet (the sources hold {sum(known)} rows before the split, bad-row, length filters)"
        return "not prepared yet"
    text = f"train {rows.get('train')}, val {rows.get('val')}"
    if rows.get("read") is not None:
        text += (
            f" ({rows['read']} read, {rows.get('bad')} bad, {rows.get('too_long')} over "
            f"{facts.get('max_tokens')} tokens)"
        )
    return text


def _reward_text(reward: dict[str, Any]) -> str:
    scorer = reward["scorer"]
    if scorer == "verl":
        return "verl (verl's own scorer, chosen by each row's data_source)"
    parts = [scorer]
    if scorer == "custom":
        parts.append(f"{reward.get('path')}:{reward.get('name')}")
    if reward.get("terms"):
        parts.append("terms " + json.dumps(reward["terms"]))
    if reward.get("options"):
        parts.append("options " + json.dumps(reward["options"]))
    return ", ".join(parts)
