"""DPO-family losses as pure tensor functions (no verl, no I/O).

Conventions: every `*_logps` argument is the *summed* log-probability of a response given its prompt, one value per
preference pair (shape `[P]`). `h = (pi_chosen - pi_rejected) - (ref_chosen - ref_rejected)` is the log-ratio
margin; the implicit rewards are `beta * (pi - ref)` per response.

Losses (per pair, averaged by the caller):
- `sigmoid` (DPO, Rafailov et al. 2023) with label smoothing `eps` (conservative DPO, Mitchell 2023):
  `-(1 - eps) * log_sigmoid(beta * h) - eps * log_sigmoid(-beta * h)`; `eps = 0` is plain DPO.
- `ipo` (Azar et al. 2023): `(h - 1 / (2 * beta)) ** 2`, on summed log-probs as in the paper (TRL averages them
  over tokens instead; with sums the target margin `1/(2 beta)` is per sequence, not per token).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

LOSS_TYPES = ("sigmoid", "ipo")


@dataclass(frozen=True)
class DPOLossConfig:
    """The loss settings of the `dpo` config block.

    beta: strength of the implicit KL penalty (DPO temperature), > 0.
    loss_type: one of `LOSS_TYPES`.
    label_smoothing: assumed probability that a preference label is flipped (conservative DPO), in [0, 0.5);
        only used by `sigmoid`.
    """

    beta: float = 0.1
    loss_type: str = "sigmoid"
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise ValueError(f"dpo.beta must be > 0, got {self.beta}")
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"dpo.loss_type must be one of {LOSS_TYPES}, got {self.loss_type!r}")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError(f"dpo.label_smoothing must be in [0, 0.5), got {self.label_smoothing}")
        if self.label_smoothing > 0 and self.loss_type != "sigmoid":
            raise ValueError("dpo.label_smoothing only applies to loss_type=sigmoid")


@dataclass(frozen=True)
class DPOLossOutput:
    """Per-pair results of `dpo_loss` (all shape `[P]`); `rewards` are detached."""

    losses: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    config: DPOLossConfig,
) -> DPOLossOutput:
    """Per-pair DPO / conservative-DPO / IPO losses and implicit rewards (see the module docstring)."""
    ref_chosen_logps = ref_chosen_logps.to(policy_chosen_logps.dtype)
    ref_rejected_logps = ref_rejected_logps.to(policy_rejected_logps.dtype)
    chosen_ratio = policy_chosen_logps - ref_chosen_logps
    rejected_ratio = policy_rejected_logps - ref_rejected_logps
    margin = chosen_ratio - rejected_ratio
    if config.loss_type == "sigmoid":
        eps = config.label_smoothing
        losses = -(1.0 - eps) * F.logsigmoid(config.beta * margin) - eps * F.logsigmoid(-config.beta * margin)
    elif config.loss_type == "ipo":
        losses = (margin - 1.0 / (2.0 * config.beta)) ** 2
    else:  # pragma: no cover - rejected by DPOLossConfig
        raise ValueError(config.loss_type)
    return DPOLossOutput(
        losses=losses,
        chosen_rewards=(config.beta * chosen_ratio).detach(),
        rejected_rewards=(config.beta * rejected_ratio).detach(),
    )


def sequence_logps(token_logps: torch.Tensor, response_mask: torch.Tensor, seq_lengths: torch.Tensor) -> torch.Tensor:
    """Sum packed per-token log-probs into one value per sequence.

    token_logps: `[total_tokens]` packed over sequences, `token_logps[t] = log p(token t+1 | tokens <= t)` (verl's
        convention: the label is the next token).
    response_mask: `[total_tokens]` 1 on response tokens of the *input* (not yet shifted), packed the same way.
    seq_lengths: `[B]` lengths of the packed sequences, summing to `total_tokens`.

    The mask is shifted left by one so that the log-prob predicting each response token is counted; the last
    position of each sequence (which predicts the next sequence's first token) always gets the next sequence's
    first mask value, which is 0 because every sequence starts with prompt tokens.
    """
    if token_logps.shape != response_mask.shape:
        raise ValueError(f"shape mismatch: {tuple(token_logps.shape)} vs {tuple(response_mask.shape)}")
    shifted = torch.roll(response_mask, shifts=-1, dims=0).to(token_logps.dtype)
    seq_ids = torch.repeat_interleave(torch.arange(seq_lengths.numel(), device=token_logps.device), seq_lengths)
    out = torch.zeros(seq_lengths.numel(), dtype=token_logps.dtype, device=token_logps.device)
    return out.index_add(0, seq_ids, token_logps * shifted)
