"""`trainer-platform plan [OVERRIDES...]`: what the planner decides for a run, without launching or writing anything.

Takes the same overrides as `python train.py` and prints the estimated memory per GPU by phase, role and kind
against the GPU's capacity, and the settings chosen with the reason for each. Exit code 2 when it cannot fit.
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.text import Text

NAME = "plan"
HELP = "estimated memory per GPU and the settings the planner picks for a run (train.py overrides)"
ORDER = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", help="config overrides, as for train.py (model=qwen2_5_7b ...)")


def run(args: argparse.Namespace, out: Console) -> int:
    from trainer_platform.batch import batch_math
    from trainer_platform.compose import compose_config
    from trainer_platform.planner import plan
    from trainer_platform.planner.report import memory_table, settings_table, verdict_line
    from trainer_platform.spec import RunSpec

    spec = RunSpec.from_config(compose_config(list(args.overrides)))
    the_plan = plan(spec)
    batch = batch_math(spec, the_plan)
    out.print(
        Text(
            f"{spec.algorithm.name} on {spec.model.name}: {the_plan.nnodes} node(s) x {the_plan.gpus_per_node} "
            f"{the_plan.accelerator}, rollout {the_plan.rollout_engine or '-'} (TP {the_plan.rollout_tp}), "
            f"micro batch {batch.micro_batch_size_per_gpu}, {batch.grad_accumulation} accumulation steps"
        )
    )
    for table in (memory_table(the_plan), settings_table(the_plan)):
        if table is not None:
            out.print(table)
    out.print(Text(verdict_line(the_plan)))
    return 0
