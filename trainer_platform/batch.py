"""Batch arithmetic: global batch vs mini batch vs micro batch vs world size vs rollout_n.

Checked once the world size is known (after planning), with every effective number shown, so a run that
verl would reject (or silently reshape) fails here before any compute is spent.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainer_platform.errors import SpecError
from trainer_platform.planner import Plan
from trainer_platform.spec import RLAlgorithm, RunSpec


@dataclass(frozen=True)
class BatchMath:
    """The effective numbers of one training step."""

    # world size (ranks across all nodes)
    world_size: int
    # prompts (RL) or samples (SFT/DPO) per step, all ranks
    batch_size: int
    # sequences per step, all ranks (RL: prompts x rollout_n)
    sequences_per_step: int
    # optimizer updates per step (RL: batch / mini batch; SFT/DPO: 1)
    updates_per_step: int
    # sequences one rank processes per update
    per_rank_per_update: int
    # sequences per forward/backward on one rank
    micro_batch_size_per_gpu: int

    @property
    def grad_accumulation(self) -> int:
        return self.per_rank_per_update // self.micro_batch_size_per_gpu

    def lines(self) -> list[str]:
        """Human-readable breakdown for the dry run."""
        return [
            f"world size                 {self.world_size}",
            f"batch per step             {self.batch_size}",
            f"sequences per step         {self.sequences_per_step}",
            f"optimizer updates per step {self.updates_per_step}",
            f"sequences per rank/update  {self.per_rank_per_update}",
            f"micro batch per rank       {self.micro_batch_size_per_gpu}",
            f"gradient accumulation      {self.grad_accumulation}",
        ]


def batch_math(spec: RunSpec, plan: Plan) -> BatchMath:
    """Compute the step's batch arithmetic or raise SpecError showing the numbers that do not divide."""
    algo = spec.algorithm
    world = plan.world_size
    micro = plan.micro_batch_size_per_gpu
    if isinstance(algo, RLAlgorithm):
        n = algo.rollout_n
        sequences = algo.batch_size * n
        if algo.batch_size % algo.mini_batch_size:
            raise SpecError(
                "algorithm.mini_batch_size",
                f"batch_size {algo.batch_size} is not a multiple of mini_batch_size {algo.mini_batch_size}",
                f"pick a divisor of {algo.batch_size}",
            )
        updates = algo.batch_size // algo.mini_batch_size
        mini_sequences = algo.mini_batch_size * n
        if mini_sequences % world:
            raise SpecError(
                "algorithm.mini_batch_size",
                f"mini_batch_size {algo.mini_batch_size} x rollout_n {n} = {mini_sequences} responses "
                f"do not split evenly over {world} ranks",
                f"make mini_batch_size x rollout_n a multiple of {world}",
            )
        per_rank = mini_sequences // world
        key = "algorithm.micro_batch_size_per_gpu"
        what = f"mini_batch_size {algo.mini_batch_size} x rollout_n {n} / {world} ranks = {per_rank} responses per rank"
    else:
        sequences = algo.batch_size
        updates = 1
        if algo.batch_size % world:
            raise SpecError(
                "algorithm.batch_size",
                f"batch_size {algo.batch_size} does not split over {world} ranks",
                f"use a multiple of {world}",
            )
        per_rank = algo.batch_size // world
        key = "algorithm.micro_batch_size_per_gpu"
        what = f"batch_size {algo.batch_size} / {world} ranks = {per_rank} sequences per rank"
    if per_rank % micro:
        raise SpecError(
            key,
            f"{micro} does not divide the {what}",
            f"use a divisor of {per_rank}, or leave it null so the planner picks one",
        )
    return BatchMath(
        world_size=world,
        batch_size=algo.batch_size,
        sequences_per_step=sequences,
        updates_per_step=updates,
        per_rank_per_update=per_rank,
        micro_batch_size_per_gpu=micro,
    )
