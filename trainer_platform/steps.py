"""How long a run trains: `train.steps` optimizer steps, or `algorithm.epochs` passes over the data.

verl's trainers (SFT, RL, and our DPO trainer alike) loop `for epoch in range(total_epochs)` and stop early at
`total_training_steps`; the last step is checkpointed only when the loop reaches it. So a step-based run must give
verl an epoch bound that can never end the loop first: the data then repeats as many epochs as the steps need.
An epoch-based run leaves the step count to verl (it counts the batches its own dataloader yields).
"""

from __future__ import annotations

from collections.abc import Sequence

from trainer_platform.errors import SpecError
from trainer_platform.spec import RLAlgorithm, RunSpec


def steps_per_epoch(spec: RunSpec, train_rows: int | None, world_size: int = 1) -> int | None:
    """Full batches one pass over the training rows yields (verl drops the last partial batch), None if unknown."""
    if train_rows is None:
        return None
    batch = spec.algorithm.batch_size
    if isinstance(spec.algorithm, RLAlgorithm):
        return train_rows // batch  # one driver-side dataloader
    per_rank_batch = max(1, batch // world_size)
    return (train_rows // world_size) // per_rank_batch  # a DistributedSampler per rank, drop_last on both


def total_steps(spec: RunSpec, train_rows: int | None, world_size: int = 1) -> int | None:
    """Optimizer steps the run will take: train.steps, or epochs x batches per epoch when the rows are known."""
    if spec.train.steps is not None:
        return spec.train.steps
    per_epoch = steps_per_epoch(spec, train_rows, world_size)
    return None if per_epoch is None else spec.algorithm.epochs * per_epoch


def verl_total_epochs(spec: RunSpec) -> int:
    """`trainer.total_epochs` for verl: the epochs asked for, or, for a step-based run, a bound the steps reach first.

    Every epoch yields at least one step (a dataset smaller than a batch is refused before launch), except that
    DAPO's group filter may draw up to `max_inflight_gen_batches` batches for one step.
    """
    if spec.train.steps is None:
        return spec.algorithm.epochs
    algo = spec.algorithm
    draws = algo.filter_groups.max_inflight_gen_batches if isinstance(algo, RLAlgorithm) and algo.filter_groups else 1
    return spec.train.steps * max(1, draws)


def check_steps(spec: RunSpec, train_rows: int | None, world_size: int, explicit: Sequence[str]) -> None:
    """Refuse what cannot train as asked: fewer rows than one batch, or steps and epochs that disagree.

    `explicit` are the keys the user set on the command line; `algorithm.epochs` there together with a
    `train.steps` (from anywhere) is a conflict unless they describe the same number of steps.
    """
    per_epoch = steps_per_epoch(spec, train_rows, world_size)
    if per_epoch == 0:
        raise SpecError(
            "algorithm.batch_size",
            f"batch_size {spec.algorithm.batch_size} is larger than the {train_rows} training rows"
            + (f" over {world_size} ranks" if world_size > 1 and not isinstance(spec.algorithm, RLAlgorithm) else ""),
            f"use algorithm.batch_size <= {train_rows}, or more training data",
        )
    steps = spec.train.steps
    if steps is None or "algorithm.epochs" not in explicit:
        return
    epochs = spec.algorithm.epochs
    if per_epoch is not None and epochs * per_epoch == steps:
        return
    implied = f" = {epochs * per_epoch} steps ({per_epoch} per epoch)" if per_epoch is not None else ""
    raise SpecError(
        "train.steps / algorithm.epochs",
        f"both are set and disagree: train.steps={steps}, algorithm.epochs={epochs}{implied}",
        "set only one of them: train.steps=N for N optimizer steps, or train.steps=null algorithm.epochs=E",
    )
