"""trainer_platform.composer: a batch's configs come from one Hydra composition per distinct set of group choices,
and are exactly what Hydra's own compose gives, errors included; verl's schema is composed once per batch."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import pytest
from omegaconf import OmegaConf

from trainer_platform.batch import batch_math
from trainer_platform.compose import compose_config, run_composer
from trainer_platform.errors import SpecError
from trainer_platform.paths import verl_ext_dir
from trainer_platform.planner import plan
from trainer_platform.spec import RunSpec
from trainer_platform.verl_job import JobInputs, build_job
from trainer_platform.verl_schema import CONFIG_NAMES, VerlSchema, compose_verl_config, job_overrides, verl_config_dir

SFT = ["algorithm=sft", "data=tiny_sft", "compute=cpu"]
# what a job's placeholders count as when verl's schema checks it (verl_schema.VerlSchema.check)
PLACEHOLDERS = {"TP_RUN_DIR": "/run", "TP_VERL_EXT": "/verl_ext", "MASTER_ADDR": "head", "MASTER_PORT": "1"}

# value overrides of every kind, group choices, an experiment, verl passthrough keys
CORPUS = [
    [*SFT, "train.seed=4", "algorithm.lr=2e-5", "name=a"],
    [
        "algorithm=grpo",
        "+verl.trainer.foo=1",
        "+algorithm.extra={a: 1, b: [1, 2]}",
        "~train.eval_every=",
        "++algorithm.lr=3e-6",
        "verl.actor_rollout_ref.rollout.n=2",
    ],
    ["+experiment=tiny_sft_cpu", "train.steps=3"],
    # bad input goes through Hydra's own compose: the same message (the sweep bad-input tests cover the rest)
    [*SFT, "algorithm.klcoef=3"],  # unknown key, with did-you-mean
    [*SFT, "+algorithm.lr=3"],  # + on a key that exists
]


def _composed(overrides: list[str], **kwargs: Any) -> Any:
    try:
        return compose_config(overrides, **kwargs)
    except SpecError as exc:
        return f"SpecError: {exc}"


def test_a_shared_composer_gives_what_hydra_compose_gives() -> None:
    composer = run_composer()
    for overrides in CORPUS:
        assert _composed(overrides, composer=composer) == _composed(overrides), overrides


def test_hydra_builds_one_tree_per_set_of_group_choices() -> None:
    composer = run_composer()
    configs = [compose_config([*SFT, f"train.seed={seed}"], composer=composer) for seed in range(6)]
    assert composer.trees_built == 1
    assert [c["train"]["seed"] for c in configs] == list(range(6))  # each run its own copy
    compose_config(["algorithm=grpo", "train.seed=1"], composer=composer)
    compose_config(["algorithm=grpo", "train.seed=2"], composer=composer)
    assert composer.trees_built == 2


def _jobs(algorithm: str, data: str, seeds: range) -> list[Any]:
    composer = run_composer()
    jobs = []
    for seed in seeds:
        spec = RunSpec.from_config(
            compose_config(
                [f"algorithm={algorithm}", f"data={data}", "compute=cpu", f"train.seed={seed}"], composer=composer
            )
        )
        the_plan = plan(spec, engines=())
        inputs = JobInputs(
            model_path="/models/tiny",
            train_files=("/data/train.parquet",),
            val_files=("/data/val.parquet",),
            run_dir="/runs/r",
            train_rows=64,
            python=sys.executable,
        )
        jobs.append(build_job(spec, the_plan, batch_math(spec, the_plan), inputs))
    return jobs


# verl's ppo_trainer (every RL algorithm), and our DPO config on verl's sft_trainer_engine (a hydra.searchpath in
# the tree's key); test_a_key_verl_rejects_is_named_as_before covers sft_trainer_engine itself
@pytest.mark.parametrize(("algorithm", "data"), [("grpo", "tiny_math"), ("dpo", "tiny_pref")])
def test_verl_schema_is_composed_once_per_batch_and_matches_hydra(algorithm: str, data: str) -> None:
    jobs = _jobs(algorithm, data, range(2))
    schema = VerlSchema(dpo_config_dir=verl_ext_dir() / "tp_dpo_config")
    shared = [schema.check(job) for job in jobs]
    assert schema.trees_built == 1
    resolved = jobs[1].resolve(PLACEHOLDERS)
    if jobs[1].entry_point in CONFIG_NAMES:
        alone = compose_verl_config(verl_config_dir(), CONFIG_NAMES[jobs[1].entry_point], job_overrides(resolved))
    else:
        searchpath = f"hydra.searchpath=[file://{verl_config_dir()}]"
        alone = compose_verl_config(
            verl_ext_dir() / "tp_dpo_config", "dpo_trainer", [*job_overrides(resolved), searchpath]
        )
    assert OmegaConf.to_container(shared[1]) == OmegaConf.to_container(alone)
    assert OmegaConf.to_container(shared[0]) != OmegaConf.to_container(shared[1])  # each job its own copy (seeds)


def test_a_key_verl_rejects_is_named_as_before() -> None:
    (job,) = _jobs("sft", "tiny_sft", range(1))
    bad = dataclasses.replace(job, argv=(*job.argv, "trainer.no_such_key=1"))
    schema = VerlSchema()
    schema.check(job)  # the tree is built and kept
    with pytest.raises(SpecError) as shared:
        schema.check(bad)
    with pytest.raises(SpecError) as alone:
        compose_verl_config(verl_config_dir(), CONFIG_NAMES[job.entry_point], job_overrides(bad.resolve(PLACEHOLDERS)))
    assert str(shared.value) == str(alone.value)
    assert "trainer.no_such_key" in str(shared.value)
