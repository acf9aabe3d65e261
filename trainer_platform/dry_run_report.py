"""What a dry run prints: the spec summary, the plan, the batch arithmetic and the copy-pasteable command."""

from __future__ import annotations

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


def dry_run_report(spec: RunSpec, the_plan: Plan, batch: BatchMath, job: VerlJob, steps: int | None) -> str:
    """The dry run's text (nothing launched)."""
    from trainer_platform.planner.report import plan_text

    algo = spec.algorithm
    params = spec.model.arch.params
    lines = [
        "trainer_platform dry run (nothing launched)",
        f"  algorithm  {algo.name} ({algo.kind}), lr {algo.lr}, epochs {algo.epochs}, steps {steps or 'per epochs'}",
        f"  model      {spec.model.name} ({_count(params)} params)",
        f"  data       {spec.data.name} ({spec.data.format})",
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
