"""The verl keys the job builder sets from a spec field, and the check that keeps `verl.` passthrough off them.

A passthrough of a key we model (`verl.data.train_batch_size=3`) would land after our value and bypass our checks
(batch arithmetic, steps, files): it is refused, naming the key of ours that sets it. Raw keys we set without a spec
field (engine and CPU settings) may be overridden; the job then carries one value for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainer_platform.errors import SpecError

_ARR = "actor_rollout_ref"
# verl keys the job builder sets from a spec field: a `verl.` passthrough of one is refused, naming our key, so every
# check of ours sees the value that runs (a test keeps this table in step with what build_job emits)
MODELED_KEYS: dict[str, str] = {
    "algorithm.adv_estimator": "algorithm.estimator",
    "algorithm.use_kl_in_reward": "algorithm.kl_in_reward",
    "algorithm.kl_penalty": "algorithm.kl_estimator",
    "algorithm.kl_ctrl.kl_coef": "algorithm.kl_coef",
    "algorithm.gamma": "algorithm.gamma",
    "algorithm.lam": "algorithm.lam",
    "algorithm.filter_groups.enable": "algorithm.filter_groups.enable",
    "algorithm.filter_groups.metric": "algorithm.filter_groups.metric",
    "algorithm.filter_groups.max_inflight_gen_batches": "algorithm.filter_groups.max_inflight_gen_batches",
    "data.train_files": "data.train_files",
    "data.val_files": "data.val_files",
    "data.train_batch_size": "algorithm.batch_size",
    "data.micro_batch_size_per_gpu": "algorithm.micro_batch_size_per_gpu",
    "data.max_length": "data.max_length",
    "data.max_prompt_length": "data.max_prompt_length",
    "data.max_response_length": "data.max_response_length",
    "data.seed": "train.seed",
    "model.path": "model.path",
    "model.trust_remote_code": "model.trust_remote_code",
    "model.enable_gradient_checkpointing": "model.gradient_checkpointing",
    "optim.lr": "algorithm.lr",
    "optim.weight_decay": "algorithm.weight_decay",
    "optim.lr_warmup_steps_ratio": "algorithm.warmup_ratio",
    "optim.clip_grad": "algorithm.grad_clip",
    "optim.lr_scheduler_type": "algorithm.lr_schedule",
    f"{_ARR}.model.path": "model.path",
    f"{_ARR}.model.trust_remote_code": "model.trust_remote_code",
    f"{_ARR}.model.enable_gradient_checkpointing": "model.gradient_checkpointing",
    f"{_ARR}.actor.optim.lr": "algorithm.lr",
    f"{_ARR}.actor.optim.weight_decay": "algorithm.weight_decay",
    f"{_ARR}.actor.optim.lr_warmup_steps_ratio": "algorithm.warmup_ratio",
    f"{_ARR}.actor.grad_clip": "algorithm.grad_clip",
    f"{_ARR}.actor.ppo_mini_batch_size": "algorithm.mini_batch_size",
    f"{_ARR}.actor.ppo_micro_batch_size_per_gpu": "algorithm.micro_batch_size_per_gpu",
    f"{_ARR}.actor.ppo_epochs": "algorithm.ppo_epochs",
    f"{_ARR}.actor.use_kl_loss": "algorithm.kl_loss",
    f"{_ARR}.actor.kl_loss_coef": "algorithm.kl_coef",
    f"{_ARR}.actor.kl_loss_type": "algorithm.kl_estimator",
    f"{_ARR}.actor.entropy_coeff": "algorithm.entropy_coef",
    f"{_ARR}.actor.clip_ratio_low": "algorithm.clip_ratio_low",
    f"{_ARR}.actor.clip_ratio_high": "algorithm.clip_ratio_high",
    f"{_ARR}.actor.policy_loss.loss_mode": "algorithm.loss_mode",
    f"{_ARR}.actor.loss_agg_mode": "algorithm.loss_agg_mode",
    f"{_ARR}.rollout.name": "compute.rollout_engine",
    f"{_ARR}.rollout.n": "algorithm.rollout_n",
    f"{_ARR}.rollout.temperature": "algorithm.temperature",
    f"{_ARR}.rollout.top_p": "algorithm.top_p",
    f"{_ARR}.rollout.top_k": "algorithm.top_k",
    f"{_ARR}.rollout.tensor_model_parallel_size": "compute.rollout_tp",
    f"{_ARR}.rollout.log_prob_micro_batch_size_per_gpu": "algorithm.micro_batch_size_per_gpu",
    f"{_ARR}.ref.log_prob_micro_batch_size_per_gpu": "algorithm.micro_batch_size_per_gpu",
    "critic.model.path": "model.path",
    "critic.optim.lr": "algorithm.critic.lr",
    "critic.cliprange_value": "algorithm.critic.value_clip",
    "critic.ppo_micro_batch_size_per_gpu": "algorithm.micro_batch_size_per_gpu",
    "reward.custom_reward_function.path": "data.reward.path",
    "reward.custom_reward_function.name": "data.reward.name",
    "reward.custom_reward_function.reward_kwargs": "data.reward.options (or data.reward.terms)",
    "trainer.save_freq": "train.save_every",
    "trainer.test_freq": "train.eval_every",
    "trainer.total_training_steps": "train.steps",
    "trainer.total_epochs": "algorithm.epochs (or train.steps)",
    "trainer.seed": "train.seed",
    "trainer.val_before_train": "train.val_before_train",
    "trainer.project_name": "logger.wandb.project",
    "trainer.experiment_name": "name",
    "trainer.logger": "logger.backends (logger=...)",
    "trainer.default_local_dir": "run_root and name",
    "trainer.resume_mode": "resume=true",
    "trainer.nnodes": "compute.nodes",
    "trainer.n_gpus_per_node": "compute.gpus_per_node",
    "dpo.beta": "algorithm.beta",
    "dpo.loss_type": "algorithm.loss_type",
    "dpo.label_smoothing": "algorithm.label_smoothing",
}


def check_passthrough(raw: Mapping[str, Any]) -> None:
    """SpecError for the first `verl.` key that one of our keys sets."""
    for key in _flat(raw):
        ours = MODELED_KEYS.get(key.lstrip("+"))
        if ours is not None:
            raise SpecError(
                f"verl.{key}",
                f"the platform sets verl's {key} from {ours}, so this passthrough would bypass its checks",
                f"set {ours} instead",
            )


def _flat(raw: Mapping[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in raw.items():
        if isinstance(value, Mapping) and value:
            out += _flat(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}")
    return out
