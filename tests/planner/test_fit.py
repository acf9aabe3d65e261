"""The fit check on whole specs: auto settings, explicit values kept, refusals with numbers, verl keys, records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_train
from trainer_platform.batch import batch_math
from trainer_platform.compose import compose_config
from trainer_platform.errors import SpecError
from trainer_platform.planner import plan
from trainer_platform.planner.report import plan_to_dict
from trainer_platform.spec import RunSpec
from trainer_platform.verl_job import JobInputs, build_job
from trainer_platform.verl_schema import check_job_against_verl

# GSM8K-shaped lengths and verl's example batch, on the tiny data so no dataset file is needed
SHAPE = [
    "data=tiny_math",
    "data.max_prompt_length=512",
    "data.max_response_length=1024",
    "algorithm.batch_size=1024",
    "algorithm.mini_batch_size=256",
]


def plan_of(*overrides: str):
    spec = RunSpec.from_config(compose_config([*SHAPE, *overrides]))
    return spec, plan(spec, engines=("vllm",))


def job_argv(spec: RunSpec, the_plan, model_dir: Path) -> tuple[str, ...]:
    inputs = JobInputs(
        model_path=str(model_dir),
        train_files=("/d/t.parquet",),
        val_files=(),
        run_dir="/runs/x",
        verl_ext_dir="/repo/verl",
    )
    job = build_job(spec, the_plan, batch_math(spec, the_plan), inputs)
    check_job_against_verl(job)  # every key the planner adds exists in verl 0.9.1's schema
    return job.argv


def test_a_7b_grpo_on_8_h100_fits_without_offload(tiny_model_dir: Path) -> None:
    spec, p = plan_of("model=qwen2_5_7b", "compute=8xh100")
    assert p.fit is not None and p.fit.verdict == "yes"
    s = p.fit.settings
    assert not s.param_offload and not s.optimizer_offload and s.lora_rank == 0 and s.dynamic
    argv = job_argv(spec, p, tiny_model_dir)
    assert f"actor_rollout_ref.actor.ppo_max_token_len_per_gpu={s.max_tokens}" in argv
    assert f"actor_rollout_ref.rollout.gpu_memory_utilization={s.rollout_fraction}" in argv
    assert "actor_rollout_ref.actor.fsdp_config.param_offload=False" in argv


def test_full_fine_tuning_that_cannot_fit_falls_back_to_lora(tiny_model_dir: Path) -> None:
    spec, p = plan_of("model=qwen2_5_7b", "compute=1xh100")
    assert p.fit is not None and p.fit.settings.lora_rank == 32
    assert dict((n, why) for n, _, why in p.fit.reasons)["lora rank"] == "full fine-tuning cannot fit"
    argv = job_argv(spec, p, tiny_model_dir)
    assert "actor_rollout_ref.model.lora_rank=32" in argv


def test_explicit_settings_are_kept() -> None:
    _, p = plan_of(
        "model=qwen2_5_7b",
        "compute=8xh100",
        "compute.param_offload=true",
        "compute.rollout_memory_fraction=0.5",
        "model.gradient_checkpointing=true",
        "compute.rollout_tp=2",
    )
    assert p.fit is not None
    s = p.fit.settings
    assert (s.param_offload, s.rollout_fraction, s.gradient_checkpointing, s.rollout_tp) == (True, 0.5, True, 2)
    reasons = {n: why for n, _, why in p.fit.reasons}
    assert reasons["param offload"] == reasons["rollout TP"] == "set by you"


def test_a_run_that_cannot_fit_is_refused_with_the_biggest_consumer_and_the_cheapest_fix() -> None:
    with pytest.raises(SpecError) as info:
        plan_of("model=qwen2_5_7b", "compute=1xh100", "model.lora_rank=0")
    err = info.value
    assert err.key == "compute" and "does not fit" in err.problem and "biggest consumer: actor" in err.problem
    assert "GiB" in err.problem and "estimate" in err.problem
    assert err.hint.startswith("cheapest fix: model.lora_rank=null (estimated peak") and "GiB" in err.hint


def test_long_sequences_on_small_gpus_use_sequence_parallelism() -> None:
    _, p = plan_of(
        "model=qwen2_5_7b",
        "compute=8xh100",
        "data.max_prompt_length=2048",
        "data.max_response_length=30720",
        "compute.gpu_memory_gib=40",
        "model.lora_rank=0",
    )
    assert p.fit is not None and p.fit.settings.ulysses > 1


def test_plan_record_is_plain_data_and_says_it_is_an_estimate() -> None:
    _, p = plan_of("model=qwen2_5_7b", "compute=8xh100")
    record = json.loads(json.dumps(plan_to_dict(p)))
    memory = record["memory"]
    assert memory["estimate"] is True and "estimate" in memory["note"]
    assert set(memory["phases"]) == {"rollout", "log-prob", "actor update"}
    assert memory["peak_gib"] <= memory["capacity_gib"] * 0.9
    assert {r["setting"] for r in memory["reasons"]} >= {"gradient checkpointing", "rollout memory fraction"}


def test_ray_cpus_and_rollout_fraction_are_planner_decisions() -> None:
    spec = RunSpec.from_config(compose_config(["compute=cpu"]))
    assert plan(spec).ray_num_cpus == 16
    _, gpu = plan_of("model=qwen2_5_7b", "compute=8xh100")
    assert gpu.ray_num_cpus is None and 0.1 <= gpu.rollout_memory_fraction <= 0.85


def test_plan_command_prints_tables_and_refuses_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from trainer_platform.cli.app import main

    assert main(["plan", *SHAPE, "model=qwen2_5_7b", "compute=8xh100"]) == 0
    out = capsys.readouterr().out
    assert "estimated memory per GPU" in out and "actor update" in out and "rollout memory fraction" in out
    assert "estimates" in out
    assert main(["plan", *SHAPE, "model=qwen2_5_7b", "compute=1xh100", "model.lora_rank=0"]) == 2
    assert "cheapest fix" in capsys.readouterr().err


def test_a_refused_launch_exits_2_and_leaves_no_run_dir(tmp_path: Path) -> None:
    res = run_train(
        *SHAPE,
        "model=qwen2_5_7b",
        "compute=1xh100",
        "model.lora_rank=0",
        "dry_run=true",
        f"run_root={tmp_path}/runs",
        cwd=tmp_path,
        check=False,
    )
    assert res.returncode == 2 and "does not fit" in res.stderr + res.stdout
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_dry_run_shows_the_plan_and_writes_plan_json(tmp_path: Path) -> None:
    res = run_train(
        "algorithm=sft", "data=tiny_sft", "compute=cpu", "dry_run=true", f"run_root={tmp_path}/runs", cwd=tmp_path
    )
    assert "estimated memory per GPU" in res.stdout and "estimates" in res.stdout
    files = Path(res.stdout.strip().splitlines()[-1].removeprefix("dry run files: "))  # run_root/.dry-runs/...
    record = json.loads((files / "plan.json").read_text())
    assert record["memory"]["estimate"] is True
