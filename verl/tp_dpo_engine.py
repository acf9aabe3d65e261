"""The DPO trainer's glue to verl's engine: the engine loss function, batch construction, metric reduction.

verl's FSDP engine calls `loss_fn(model_output, data, dp_group) -> (loss, metrics)` once per micro-batch and
backpropagates each returned loss, summing gradients over micro-batches; FSDP then averages them over data-parallel
ranks. So a micro-batch's loss is `sum(per-pair losses) / global_pairs * dp_size`, which makes the gradient that of
the mean loss over the global batch (the same scaling verl's `sft_loss` uses with tokens). Metrics are returned as
per-micro-batch sums plus a pair count and reduced exactly by `reduce_dpo_metrics` after verl gathers them over
data-parallel ranks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from tensordict import TensorDict
from tp_dpo_losses import DPOLossConfig, dpo_loss, sequence_logps
from verl.utils import tensordict_utils as tu

# Per-micro-batch sums returned by the loss function; `reduce_dpo_metrics` turns them into means.
_SUM_KEYS = {
    "loss": "dpo_sum/loss",
    "rewards/chosen": "dpo_sum/rewards_chosen",
    "rewards/rejected": "dpo_sum/rewards_rejected",
    "rewards/margin": "dpo_sum/margin",
    "rewards/accuracy": "dpo_sum/accuracy",
    "logps/chosen": "dpo_sum/logps_chosen",
    "logps/rejected": "dpo_sum/logps_rejected",
}
_COUNT_KEY = "dpo_sum/pairs"


def batch_sequence_logps(model_output: dict[str, Any], data: TensorDict) -> torch.Tensor:
    """Summed response log-probs of every sequence in a micro-batch (`[B]`), from the engine's nested log-probs."""
    log_probs = model_output["log_probs"]
    loss_mask = data["loss_mask"]
    seq_lengths = loss_mask.offsets().diff()
    values = log_probs.values().float()  # sum in fp32 even when the engine computes in bf16
    return sequence_logps(values, loss_mask.values().to(values.dtype), seq_lengths)


def split_pairs(values: torch.Tensor, is_chosen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split interleaved `[c0, r0, c1, r1, ...]` per-sequence values into (chosen, rejected), checking the layout."""
    if values.numel() % 2 or not bool((is_chosen.view(-1, 2) == torch.tensor([1, 0], device=is_chosen.device)).all()):
        raise RuntimeError("a micro-batch does not hold whole (chosen, rejected) pairs in order")
    pairs = values.view(-1, 2)
    return pairs[:, 0], pairs[:, 1]


def make_dpo_loss_fn(config: DPOLossConfig):
    """The loss function handed to `TrainingWorker.set_loss_fn` (see the module docstring for its scaling)."""

    def dpo_engine_loss(model_output: dict[str, Any], data: TensorDict, dp_group: Any = None):
        logps = batch_sequence_logps(model_output, data)
        is_chosen = data["is_chosen"]
        policy_c, policy_r = split_pairs(logps, is_chosen)
        ref_c, ref_r = split_pairs(data["ref_logps"].to(logps.device), is_chosen)
        out = dpo_loss(policy_c, policy_r, ref_c, ref_r, config)
        global_pairs = int(tu.get_non_tensor_data(data=data, key="global_batch_size", default=policy_c.numel()))
        dp_size = int(tu.get_non_tensor_data(data=data, key="dp_size", default=1))
        loss = out.losses.sum() / global_pairs * dp_size
        margin = out.chosen_rewards - out.rejected_rewards
        metrics = {
            _COUNT_KEY: float(policy_c.numel()),
            _SUM_KEYS["loss"]: out.losses.detach().sum().item(),
            _SUM_KEYS["rewards/chosen"]: out.chosen_rewards.sum().item(),
            _SUM_KEYS["rewards/rejected"]: out.rejected_rewards.sum().item(),
            _SUM_KEYS["rewards/margin"]: margin.sum().item(),
            _SUM_KEYS["rewards/accuracy"]: (margin > 0).float().sum().item(),
            _SUM_KEYS["logps/chosen"]: policy_c.detach().sum().item(),
            _SUM_KEYS["logps/rejected"]: policy_r.detach().sum().item(),
        }
        return loss, metrics

    return dpo_engine_loss


def _flatten(value: Any) -> Iterable[float]:
    if isinstance(value, list | tuple):
        for v in value:
            yield from _flatten(v)
    elif isinstance(value, torch.Tensor):
        yield from (float(x) for x in value.flatten().tolist())
    else:
        yield float(value)


def reduce_dpo_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Means over all pairs of the step from the gathered per-micro-batch sums (any nesting of lists)."""
    pairs = sum(_flatten(metrics[_COUNT_KEY]))
    if pairs <= 0:
        raise RuntimeError("no preference pairs in the step's metrics")
    return {name: sum(_flatten(metrics[key])) / pairs for name, key in _SUM_KEYS.items()}


def make_batch(
    collated: dict[str, torch.Tensor], meta: dict[str, Any], global_pairs: int
) -> tuple[TensorDict, list[int]]:
    """A collated pair batch as the TensorDict the engine expects (meta as non-tensor data, like verl's SFT), and
    the local sequence lengths."""
    tensors: dict[str, torch.Tensor | list[Any]] = dict(collated)
    data = tu.get_tensordict(tensor_dict=tensors, non_tensor_dict={**meta, "global_batch_size": global_pairs})
    offsets: torch.Tensor = collated["input_ids"].offsets()  # type: ignore[attr-defined]
    seqlens = offsets.diff().tolist()
    return data, seqlens
