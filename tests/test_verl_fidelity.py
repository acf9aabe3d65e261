"""Fidelity matrix: for every algorithm x model x compute preset, the generated overrides compose against the
installed verl's own config (Hydra compose on verl.trainer.config, exactly as verl's entry point does) with no
unknown keys, pass verl's own `validate_config` / dataclass conversion, and the values land where intended."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trainer_platform.batch import batch_math
from trainer_platform.compose import compose_config
from trainer_platform.planner import plan
from trainer_platform.spec import RunSpec
from trainer_platform.verl_job import JobInputs, build_job
from trainer_platform.verl_schema import check_job_against_verl

RL = ["ppo", "grpo", "gspo", "dapo", "rloo", "reinforce_pp"]
MODELS = ["tiny", "qwen2_5_7b", "llama3_1_8b"]
COMPUTE = ["cpu", "8xh100", "2x8xh100"]


@pytest.fixture(autouse=True)
def _model_dir(tiny_model_dir: Path) -> None:
    # verl's dataclass checks read the model's config.json: the tiny model stands in for every preset's weights
    global MODEL_DIR
    MODEL_DIR = str(tiny_model_dir)


MODEL_DIR = ""


def _job(overrides: list[str]) -> tuple[RunSpec, Any, Any]:
    spec = RunSpec.from_config(compose_config(overrides))
    the_plan = plan(spec, engines=())
    inputs = JobInputs(
        model_path=MODEL_DIR,
        train_files=("/data/train.parquet",),
        val_files=("/data/val.parquet",),
        run_dir="/runs/fidelity",
        verl_ext_dir="/repo/verl",
        train_rows=7473,
    )
    job = build_job(spec, the_plan, batch_math(spec, the_plan), inputs)
    return spec, the_plan, job


def _rl_overrides(algo: str, model: str, compute: str, gsm8k: Path) -> list[str]:
    return [f"algorithm={algo}", f"model={model}", f"compute={compute}", "data=gsm8k", f"data.dir={gsm8k}"]


@pytest.mark.parametrize("compute", COMPUTE)
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("algo", RL)
def test_rl_job_is_accepted_by_verl(algo: str, model: str, compute: str, gsm8k_dir: Path) -> None:
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    spec, the_plan, job = _job(_rl_overrides(algo, model, compute, gsm8k_dir))
    config = check_job_against_verl(job)
    validate_config(config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    omega_conf_to_dataclass(config.algorithm)
    omega_conf_to_dataclass(config.actor_rollout_ref.rollout)

    arr = config.actor_rollout_ref
    assert arr.actor.optim.lr == spec.algorithm.lr
    assert arr.rollout.n == spec.algorithm.rollout_n
    assert arr.rollout.name == ("hf" if compute == "cpu" else "vllm")
    assert config.trainer.nnodes == the_plan.nnodes and config.trainer.n_gpus_per_node == the_plan.gpus_per_node
    assert config.trainer.default_local_dir == "/run/checkpoints"  # ${TP_RUN_DIR}/checkpoints, filled in where it runs
    assert "file" in config.trainer.logger
    assert need_critic(config) == (algo == "ppo")
    expected = {
        "ppo": "gae",
        "grpo": "grpo",
        "gspo": "grpo",
        "dapo": "grpo",
        "rloo": "rloo",
        "reinforce_pp": "reinforce_plus_plus",
    }[algo]
    assert config.algorithm.adv_estimator == expected
    if compute == "cpu":
        assert config.trainer.device == "cpu" and arr.actor.strategy == "fsdp2"
        assert job.env["VERL_PLATFORM"] == "tp_cpu"


def test_algorithm_specific_keys_land_where_intended(gsm8k_dir: Path) -> None:
    def cfg(algo: str) -> Any:
        return check_job_against_verl(_job(_rl_overrides(algo, "qwen2_5_7b", "8xh100", gsm8k_dir))[2])

    grpo = cfg("grpo").actor_rollout_ref.actor
    assert grpo.use_kl_loss is True and grpo.kl_loss_coef == 0.001 and grpo.kl_loss_type == "low_var_kl"
    gspo = cfg("gspo")
    assert gspo.actor_rollout_ref.actor.policy_loss.loss_mode == "gspo"
    assert gspo.actor_rollout_ref.actor.loss_agg_mode == "seq-mean-token-mean"
    assert (gspo.actor_rollout_ref.actor.clip_ratio_low, gspo.actor_rollout_ref.actor.clip_ratio_high) == (3e-4, 4e-4)
    dapo = cfg("dapo")
    assert dapo.reward.reward_manager.name == "dapo" and dapo.algorithm.filter_groups.enable is True
    assert dapo.actor_rollout_ref.actor.clip_ratio_high == 0.28
    assert dapo.reward.reward_kwargs.overlong_buffer_cfg.enable is True
    ppo = cfg("ppo")
    assert ppo.critic.model.path == MODEL_DIR and ppo.critic.optim.lr == 1e-5
    rloo = cfg("rloo")
    assert rloo.algorithm.use_kl_in_reward is True
    rpp = cfg("reinforce_pp")
    assert rpp.actor_rollout_ref.actor.optim.lr == 3e-6 and rpp.actor_rollout_ref.rollout.n == 8


@pytest.mark.parametrize("compute", COMPUTE)
@pytest.mark.parametrize("model", MODELS)
def test_sft_job_is_accepted_by_verl(model: str, compute: str) -> None:
    from verl.utils.config import omega_conf_to_dataclass

    spec, the_plan, job = _job(
        [
            "algorithm=sft",
            f"model={model}",
            f"compute={compute}",
            "data=tiny_sft",
            "algorithm.batch_size=256",
            "algorithm.micro_batch_size_per_gpu=4",
        ]
    )
    config = check_job_against_verl(job)
    for section in ("engine", "optim", "checkpoint"):
        omega_conf_to_dataclass(config[section])
    assert config.optim.lr == spec.algorithm.lr
    assert config.data.train_batch_size == 256 and config.data.micro_batch_size_per_gpu == 4
    assert config.trainer.n_gpus_per_node == the_plan.gpus_per_node
    assert job.argv[:4] == ("python", "-m", "torch.distributed.run", f"--nproc_per_node={the_plan.gpus_per_node}")


def test_passthrough_keys_reach_verl_and_unknown_ones_are_rejected(gsm8k_dir: Path) -> None:
    from trainer_platform.errors import SpecError

    base = _rl_overrides("grpo", "qwen2_5_7b", "8xh100", gsm8k_dir)
    job = _job([*base, "verl.actor_rollout_ref.rollout.enforce_eager=true"])[2]
    assert check_job_against_verl(job).actor_rollout_ref.rollout.enforce_eager is True
    job = _job([*base, "verl.actor_rollout_ref.rollout.enforce_eagr=true"])[2]
    with pytest.raises(SpecError, match="enforce_eagr"):
        check_job_against_verl(job)


@pytest.mark.parametrize(
    ("override", "shown"),
    [
        ("actor_rollout_ref.rollout.enforce_eager=maybe", "true or false"),
        ("actor_rollout_ref.rollout.gpu_memory_utilization=abc", "a number"),
        ("trainer.critic_warmup=[1]", "a number"),
        ("actor_rollout_ref.rollout.agent=5", "a mapping"),
        ("actor_rollout_ref.actor.checkpoint.save_contents=5", "a list"),
    ],
)
def test_passthrough_values_of_the_wrong_type_are_refused(override: str, shown: str, gsm8k_dir: Path) -> None:
    from trainer_platform.errors import SpecError

    job = _job([*_rl_overrides("grpo", "qwen2_5_7b", "8xh100", gsm8k_dir), f"verl.{override}"])[2]
    with pytest.raises(SpecError, match=shown) as err:
        check_job_against_verl(job)
    assert err.value.key == f"verl.{override.split('=', 1)[0]}", err.value


def test_passthrough_values_of_the_right_type_pass(gsm8k_dir: Path) -> None:
    right = ["gpu_memory_utilization=0.6", "enforce_eager=false", "max_num_seqs=8", "agent.num_workers=2"]
    passthrough = [f"verl.actor_rollout_ref.rollout.{o}" for o in right]
    job = _job([*_rl_overrides("grpo", "qwen2_5_7b", "8xh100", gsm8k_dir), *passthrough])[2]
    config = check_job_against_verl(job)
    assert config.actor_rollout_ref.rollout.gpu_memory_utilization == 0.6
