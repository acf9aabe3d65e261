"""Checks that need the plan and the prepared data: ranks vs cores, rows vs batch, steps vs epochs.

Run after planning and before anything is written, for dry runs too (a dry run reports what a launch would refuse).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from trainer_platform.errors import SpecError
from trainer_platform.planner import Plan
from trainer_platform.spec import RunSpec
from trainer_platform.steps import check_steps


def check_cores(spec: RunSpec, the_plan: Plan) -> None:
    """A local CPU run gets one training process per rank: no more ranks than this machine has cores."""
    if the_plan.on_cpu and spec.launcher.name == "local":
        cores = os.cpu_count() or 1
        if the_plan.world_size > cores:
            raise SpecError(
                "compute.gpus_per_node",
                f"{the_plan.world_size} CPU ranks asked for on a machine with {cores} cores",
                f"use compute.gpus_per_node <= {cores} on CPU (each rank is one training process)",
            )


def check_rollout_settings(spec: RunSpec, the_plan: Plan, explicit: Sequence[str]) -> None:
    """Rollout settings only RL reads, and a tensor-parallel degree the chosen engine honours."""
    if spec.algorithm.kind != "rl":
        for key in ("compute.rollout_engine", "compute.rollout_tp"):
            if key in explicit:
                raise SpecError(key, f"{spec.algorithm.name} generates no rollouts, so it is never read", "remove it")
        return
    tp = spec.compute.rollout_tp
    if the_plan.rollout_engine == "hf" and tp not in (None, 1):
        raise SpecError(
            "compute.rollout_tp",
            f"the hf rollout engine runs one model copy per rank, so a tensor-parallel degree of {tp} is never used",
            "set compute.rollout_tp=1 (or null), or use a GPU rollout engine (vllm, sglang)",
        )


# settings only the GPU memory planner reads (trainer_platform/verl_memory.py); a CPU run has no memory plan
GPU_MEMORY_KEYS = (
    "model.lora_rank",
    "compute.rollout_memory_fraction",
    "compute.fsdp_strategy",
    "compute.param_offload",
    "compute.optimizer_offload",
    "compute.dynamic_batching",
    "compute.max_tokens_per_gpu",
    "compute.ulysses",
    "compute.safety_margin",
)


def check_cpu_settings(spec: RunSpec, the_plan: Plan, explicit: Sequence[str]) -> None:
    """Memory settings set on the command line for a CPU run would be silently dropped: refuse them."""
    if not the_plan.on_cpu:
        return
    for key in GPU_MEMORY_KEYS:
        if key in explicit:
            raise SpecError(
                key,
                "only GPU runs read it (their memory plan); the CPU plugin trains with fixed settings",
                f"remove it, or pick a GPU compute preset (compute={spec.compute.name} runs on CPU)",
            )


def check_runnable(spec: RunSpec, train_rows: int | None, world_size: int, explicit: Sequence[str]) -> None:
    """SpecError for the first thing the prepared data cannot do as asked."""
    check_steps(spec, train_rows, world_size, explicit)


def explicit_keys(overrides: Sequence[str]) -> list[str]:
    """The dotted keys set on the command line (`a.b=v`, `+a.b=v`, `++a.b=v`)."""
    return [o.split("=", 1)[0].strip().lstrip("+~") for o in overrides if "=" in o]
