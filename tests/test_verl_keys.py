"""MODELED_KEYS stays in step with the job builder: each verl key in it is one build_job emits for some algorithm."""

from __future__ import annotations

from trainer_platform.batch import batch_math
from trainer_platform.compose import compose_config
from trainer_platform.planner import plan
from trainer_platform.spec import RunSpec
from trainer_platform.verl_job import JobInputs, build_job
from trainer_platform.verl_keys import MODELED_KEYS

CONFIGS = [
    ["algorithm=sft", "data=tiny_sft"],
    ["algorithm=dpo", "data=tiny_pref"],
    ["algorithm=ppo", "data=tiny_math", "train.eval_every=2", "train.save_every=2"],
    ["algorithm=dapo", "data=tiny_math"],
]


def test_every_modeled_key_is_one_the_job_builder_sets() -> None:
    emitted: set[str] = set()
    for overrides in CONFIGS:
        spec = RunSpec.from_config(compose_config([*overrides, "compute=cpu", "train.steps=3"]))
        the_plan = plan(spec)
        job = build_job(spec, the_plan, batch_math(spec, the_plan), JobInputs("/m", ("/t.parquet",), (), "/r", "/e"))
        emitted |= {a.split("=", 1)[0].lstrip("+") for a in job.argv if "=" in a and not a.startswith("-")}
    assert sorted(set(MODELED_KEYS) - emitted) == []
