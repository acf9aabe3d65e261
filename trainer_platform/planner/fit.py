"""The fit check of a run: spec -> workload + the user's fixed settings -> searched settings, or a SpecError.

Every launch goes through `fit_run` (from `plan`): on GPUs the settings the user left null are searched; what the
user set is kept, and when it cannot fit the run is refused before launch naming the biggest consumer and the
cheapest fix, with numbers. On CPU the settings stay as the CPU path needs them and the estimate is compared with
host memory as a warning only (verdict "over"): the CPU path exists for small models, its kernels differ from the
GPU ones the model counts (no flash-attention, fp32), and host memory can swap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from trainer_platform.errors import SpecError
from trainer_platform.planner.arch import model_facts
from trainer_platform.planner.gpus import gpu_by_slug
from trainer_platform.planner.memory import FILL_FLOOR, Estimate, Settings, Workload, estimate
from trainer_platform.planner.search import Choice, UserChoices, cheapest_fix, choose
from trainer_platform.spec import DPOAlgorithm, RLAlgorithm, RunSpec

ESTIMATE_NOTE = (
    "memory figures are estimates from the architecture and settings (no calibration on a GPU yet); "
    f"'tight' means the run fits only if sequences average at most {FILL_FLOOR:.0%} of their maximum length"
)


@dataclass(frozen=True)
class Fit:
    """What the fit check decided: the search's choice and the capacity and margin it was checked against."""

    choice: Choice
    # GPU (or host) memory per rank the estimate was checked against, GiB
    capacity_gib: float
    margin: float

    @property
    def settings(self) -> Settings:
        return self.choice.settings

    @property
    def estimate(self) -> Estimate:
        return self.choice.estimate

    @property
    def verdict(self) -> str:
        return self.choice.verdict

    @property
    def reasons(self) -> tuple[tuple[str, str, str], ...]:
        return self.choice.reasons


def workload(spec: RunSpec, world: int, gpus_per_node: int, engine: str | None) -> Workload:
    algo, data = spec.algorithm, spec.data
    if isinstance(algo, RLAlgorithm):
        return Workload(
            kind="rl",
            seq_len=(data.max_prompt_length or 0) + (data.max_response_length or 0),
            world=world,
            gpus_per_node=gpus_per_node,
            per_rank_sequences=max(1, algo.mini_batch_size * algo.rollout_n // world),
            per_rank_batch=max(1, algo.batch_size * algo.rollout_n // world),
            reference=algo.uses_reference,
            critic=algo.uses_critic,
            rollout_engine=engine,
            entropy_in_loss=algo.entropy_coef > 0,
        )
    pairs = isinstance(algo, DPOAlgorithm)
    return Workload(
        kind="dpo" if pairs else "sft",
        seq_len=data.max_length or 1,
        world=world,
        gpus_per_node=gpus_per_node,
        per_rank_sequences=max(1, algo.batch_size // world),
        reference=pairs,
        sequences_per_sample=2 if pairs else 1,
    )


def user_choices(spec: RunSpec) -> UserChoices:
    c = spec.compute
    return UserChoices(
        gradient_checkpointing=spec.model.gradient_checkpointing,
        param_offload=c.param_offload,
        optimizer_offload=c.optimizer_offload,
        micro_batch=spec.algorithm.micro_batch_size_per_gpu,
        dynamic=c.dynamic_batching,
        max_tokens=c.max_tokens_per_gpu,
        ulysses=c.ulysses,
        rollout_tp=c.rollout_tp,
        rollout_fraction=c.rollout_memory_fraction,
        lora_rank=spec.model.lora_rank,
    )


def host_memory_gib() -> float:
    """Total host memory (the capacity of CPU runs), from /proc/meminfo; 0 when unknown."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0.0
    return pages * size / 2**30


def fit_run(
    spec: RunSpec,
    *,
    on_cpu: bool,
    accelerator: str,
    memory_gib: float | None,
    world: int,
    gpus_per_node: int,
    engine: str | None,
    micro_batch: int,
) -> Fit | None:
    """Search (GPU) or check (CPU) the memory settings; None when the capacity is unknown."""
    facts = model_facts(spec.model)
    w = workload(spec, world, gpus_per_node, engine)
    user = user_choices(spec)
    margin = spec.compute.safety_margin
    if on_cpu:
        cap = host_memory_gib() / max(1, gpus_per_node)
        if cap <= 0:
            return None
        s = Settings(
            gradient_checkpointing=bool(user.gradient_checkpointing),
            micro_batch=micro_batch,
            log_prob_micro=micro_batch,
            lora_rank=user.lora_rank or 0,
        )
        est = estimate(facts, w, s, cap)
        verdict = "yes" if est.fits(margin) else "tight" if estimate(facts, w, s, cap, FILL_FLOOR).fits() else "over"
        reasons = (("platform", "cpu", "settings of the CPU path; estimate vs host memory"),)
        return Fit(Choice(s, est, verdict, reasons), cap, margin)
    cap = memory_gib or (gpu.memory_gib if (gpu := gpu_by_slug(accelerator)) else 0.0)
    if not cap:
        return None
    dynamic_default = w.kind != "dpo" and user.micro_batch is None
    choice = choose(facts, w, cap, margin, user, dynamic_default)
    if choice.verdict == "no":
        raise _refusal(choice.estimate, accelerator, cheapest_fix(facts, w, cap, margin, user, dynamic_default))
    return Fit(choice, cap, margin)


def _refusal(est: Estimate, accelerator: str, fix: tuple[str, Choice] | None) -> SpecError:
    peak = est.peak
    big = peak.biggest()
    problem = (
        f"the run does not fit: its {peak.name} phase needs about {peak.total_gib:.1f} GiB per GPU but a "
        f"{accelerator} has {est.capacity_gib:.1f} GiB (estimate; biggest consumer: {big.role} {big.kind} "
        f"{big.gib:.1f} GiB)"
    )
    if est.kv_tokens is not None and est.kv_tokens < est.seq_len:
        problem += f"; the rollout KV cache holds {est.kv_tokens} tokens, less than one {est.seq_len}-token sequence"
    if fix is None:
        hint = "use GPUs with more memory, more GPUs, or shorter sequences (data.max_*_length)"
    else:
        change, choice = fix
        peak_then = choice.estimate.peak.total_gib
        hint = f"cheapest fix: {change} (estimated peak {peak_then:.1f} GiB"
        if choice.verdict == "tight":
            hint += f" at full length; fits if sequences average at most {FILL_FLOOR:.0%} of it"
        hint += ")"
    return SpecError("compute", problem, hint)
