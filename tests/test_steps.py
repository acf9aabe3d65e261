"""train.steps vs algorithm.epochs in the job verl runs: exact steps, an epoch bound the steps reach first."""

from __future__ import annotations

import pytest

from trainer_platform.batch import batch_math
from trainer_platform.compose import compose_config
from trainer_platform.errors import SpecError
from trainer_platform.planner import plan
from trainer_platform.preflight import check_runnable, explicit_keys
from trainer_platform.prepare import prepare
from trainer_platform.spec import RunSpec
from trainer_platform.steps import steps_per_epoch, total_steps, verl_total_epochs
from trainer_platform.verl_job import JobInputs, build_job

KINDS = {
    "sft": ["algorithm=sft", "data=tiny_sft"],
    "grpo": ["algorithm=grpo", "data=tiny_math"],
    "dapo": ["algorithm=dapo", "data=tiny_math"],
    "dpo": ["algorithm=dpo", "data=tiny_pref"],
}


def _argv(overrides: list[str]) -> tuple[str, ...]:
    spec = RunSpec.from_config(compose_config([*overrides, "compute=cpu"]))
    the_plan = plan(spec)
    prepared = prepare(spec, materialize=False)
    check_runnable(spec, prepared.train_rows, the_plan.world_size, explicit_keys(overrides))
    inputs = JobInputs(prepared.model_path, prepared.train_files, prepared.val_files, "/runs/r", "/ext")
    return build_job(spec, the_plan, batch_math(spec, the_plan), inputs).argv


def _value(argv: tuple[str, ...], key: str) -> str | None:
    return next((a.split("=", 1)[1] for a in argv if a.split("=", 1)[0].lstrip("+") == key), None)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_step_based_run_gives_verl_the_steps_and_an_epoch_bound_they_reach_first(kind: str) -> None:
    # tiny_sft_cpu's case: 20 steps on 256 rows in batches of 32 (8 per epoch) stopped at step 8 before
    argv = _argv([*KINDS[kind], "train.steps=20", "train.save_every=10"])
    assert _value(argv, "trainer.total_training_steps") == "20"
    assert int(_value(argv, "trainer.total_epochs") or 0) >= 20
    assert _value(argv, "trainer.save_freq") == "10"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_an_epoch_based_run_lets_verl_count_its_batches(kind: str) -> None:
    argv = _argv([*KINDS[kind], "train.steps=null", "algorithm.epochs=2"])
    assert _value(argv, "trainer.total_training_steps") is None and _value(argv, "trainer.total_epochs") == "2"
    if kind in ("grpo", "dapo"):  # verl's RL trainer saves the last step only when save_freq > 0 (SFT/DPO always)
        assert int(_value(argv, "trainer.save_freq") or 0) > 0


def test_dapo_bound_covers_its_extra_generation_batches() -> None:
    spec = RunSpec.from_config(
        compose_config([*KINDS["dapo"], "train.steps=5", "algorithm.filter_groups.max_inflight_gen_batches=3"])
    )
    assert verl_total_epochs(spec) == 15


def test_steps_and_epochs_that_disagree_are_refused_naming_both() -> None:
    with pytest.raises(SpecError) as err:
        _argv([*KINDS["sft"], "train.steps=20", "algorithm.epochs=1"])
    assert "train.steps=20" in str(err.value) and "algorithm.epochs=1" in str(err.value) and err.value.hint


def test_steps_and_epochs_that_agree_are_accepted() -> None:
    argv = _argv([*KINDS["sft"], "train.steps=16", "algorithm.epochs=2"])  # 256 rows / 32 = 8 steps per epoch
    assert _value(argv, "trainer.total_training_steps") == "16"


def test_steps_per_epoch_follows_verls_dataloaders() -> None:
    spec = RunSpec.from_config(compose_config(KINDS["sft"]))
    assert steps_per_epoch(spec, 256) == 8 and steps_per_epoch(spec, 255, world_size=2) == 7
    assert total_steps(spec, 256) == spec.train.steps
