"""The planner's memory settings as verl 0.9.1 keys (part of the verl mapping; verl_job.py calls these).

Keys checked against verl's config schema (verl/trainer/config: actor/dp_actor.yaml, engine/fsdp.yaml,
model/hf_model.yaml, critic/dp_critic.yaml, rollout/rollout.yaml, sft_trainer_engine.yaml) and, for every job,
by verl_schema.check_job_against_verl. The reference and log-prob passes follow the actor's batching through
verl's own interpolations (`log_prob_use_dynamic_bsz: ${oc.select:actor_rollout_ref.actor.use_dynamic_bsz}`,
`ref.ulysses_sequence_parallel_size: ${oc.select:actor_rollout_ref.actor.ulysses_sequence_parallel_size}`).
On CPU nothing is emitted here: the CPU path keeps the settings it was measured with.
"""

from __future__ import annotations

from trainer_platform.planner import Plan

ARR = "actor_rollout_ref"


def gradient_checkpointing(plan: Plan, spec_value: bool | None) -> bool:
    """The planner's choice, else the user's, else on (verl's default)."""
    if plan.fit is not None:
        return plan.fit.settings.gradient_checkpointing
    return True if spec_value is None else spec_value


def rl_memory_overrides(plan: Plan, critic: bool, strategy: str | None) -> list[str]:
    """Offload, batching, sequence parallelism, LoRA and rollout memory of main_ppo's workers."""
    if plan.on_cpu:
        return []
    out = [f"{ARR}.rollout.gpu_memory_utilization={plan.rollout_memory_fraction}"]
    if plan.fit is None:
        return out
    s = plan.fit.settings
    out += [
        f"{ARR}.actor.fsdp_config.param_offload={s.param_offload}",
        f"{ARR}.actor.fsdp_config.optimizer_offload={s.optimizer_offload}",
        f"{ARR}.ref.fsdp_config.param_offload={s.param_offload if s.ref_offload is None else s.ref_offload}",
        f"{ARR}.actor.use_dynamic_bsz={s.dynamic}",
        f"{ARR}.actor.ulysses_sequence_parallel_size={s.ulysses}",
    ]
    if s.dynamic:
        out.append(f"{ARR}.actor.ppo_max_token_len_per_gpu={s.max_tokens}")
    if s.lora_rank:
        out += [f"{ARR}.model.lora_rank={s.lora_rank}", f"{ARR}.model.lora_alpha={s.lora_rank}"]
    if strategy is not None:
        out += [f"{ARR}.actor.strategy={strategy}", f"{ARR}.ref.strategy={strategy}"]
    if critic:
        out += [
            f"critic.model.enable_gradient_checkpointing={s.gradient_checkpointing}",
            f"critic.fsdp.param_offload={s.param_offload}",
            f"critic.fsdp.optimizer_offload={s.optimizer_offload}",
            f"critic.ulysses_sequence_parallel_size={s.ulysses}",
        ]
        if s.dynamic:
            out.append(f"critic.ppo_max_token_len_per_gpu={s.max_tokens}")
    return out


def engine_memory_overrides(plan: Plan, dynamic_allowed: bool, strategy: str | None) -> list[str]:
    """The same settings for verl's sft_trainer_engine config (SFT, and our DPO trainer with fixed batches)."""
    if plan.on_cpu or plan.fit is None:
        return []
    s = plan.fit.settings
    out = [
        f"engine.param_offload={s.param_offload}",
        f"engine.optimizer_offload={s.optimizer_offload}",
        f"engine.ulysses_sequence_parallel_size={s.ulysses}",
    ]
    if dynamic_allowed:
        out.append(f"data.use_dynamic_bsz={s.dynamic}")
        if s.dynamic:
            out.append(f"data.max_token_len_per_gpu={s.max_tokens}")
    if s.lora_rank:
        out += [f"model.lora_rank={s.lora_rank}", f"model.lora_alpha={s.lora_rank}"]
    if strategy is not None:
        out.append(f"engine.strategy={strategy}")
    return out
