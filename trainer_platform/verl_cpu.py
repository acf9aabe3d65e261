"""What verl's engines and RL workers need to run on CPU through our verl extensions (verl/tp_cpu_platform.py):
overrides only, pure, asked for by verl_job.py when the plan runs on CPU."""

from __future__ import annotations

from trainer_platform.spec import RLAlgorithm


def cpu_engine_overrides(engine: str, model: str) -> list[str]:
    """What verl's FSDP engine needs on CPU: FSDP2 (FSDP1 refuses CPU params) and sdpa attention (no flash-attn)."""
    return [f"{engine}.strategy=fsdp2", f"+{model}.override_config.attn_implementation=sdpa"]


def cpu_rl_overrides(algo: RLAlgorithm) -> list[str]:
    """What verl's RL workers need on CPU (measured: each is missing -> a distinct failure)."""
    arr = "actor_rollout_ref"
    out = [
        # FSDP1 refuses CPU parameters with sync_module_states; remove-padding needs flash-attn's varlen kernels
        f"{arr}.actor.strategy=fsdp2",
        f"{arr}.ref.strategy=fsdp2",
        f"{arr}.model.use_remove_padding=False",
        f"+{arr}.model.override_config.attn_implementation=sdpa",
        # a forward-only ref is wrapped with FSDP2's pinned-memory CPU offload, which needs an accelerator; as a
        # trainable engine it needs an optimizer config (never stepped: AdamW state is allocated lazily)
        f"{arr}.ref.fsdp_config.forward_only=False",
        f"+{arr}.ref.optim=${{{arr}.actor.optim}}",
        # one agent-loop and one reward worker, no dataloader workers: extra processes only compete for cores
        f"{arr}.rollout.agent.num_workers=1",
        "reward.num_workers=1",
        "data.dataloader_num_workers=0",
        # one transfer-queue storage actor instead of 8: about 12 s less start-up on 2 cores, same training
        "transfer_queue.backend.SimpleStorage.num_data_storage_units=1",
    ]
    if algo.uses_critic:
        out += [
            "critic.strategy=fsdp2",
            "critic.model.use_remove_padding=False",
            "+critic.model.override_config.attn_implementation=sdpa",
        ]
    return out
