"""The job builder is pure: spec + plan + inputs -> one VerlJob. Env, argv shape, quoting, W&B wiring."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from trainer_platform.batch import batch_math
from trainer_platform.compose import compose_config
from trainer_platform.job import VerlJob
from trainer_platform.planner import Hardware, plan
from trainer_platform.run_files import launch_script
from trainer_platform.spec import RunSpec
from trainer_platform.steps import total_steps
from trainer_platform.verl_job import JobInputs, build_job
from trainer_platform.wandb_mode import resolve_wandb_mode

CPU_BOX = Hardware(gpus=(), gpu_memory_gib=0.0, cpu_cores=2)


def job_of(*overrides: str, run_dir: str = "/runs/r1", **inputs_kw: object):
    spec = RunSpec.from_config(compose_config(list(overrides)))
    p = plan(spec, hardware=CPU_BOX, engines=())
    kw = {
        "model_path": "/models/tiny",
        "train_files": ("/d/train.parquet",),
        "val_files": ("/d/val.parquet",),
        "run_dir": run_dir,
        "verl_ext_dir": "/repo/verl",
        **inputs_kw,
    }
    return spec, build_job(spec, p, batch_math(spec, p), JobInputs(**kw))  # type: ignore[arg-type]


def test_cpu_sft_job_loads_our_platform_through_verl_extension_points() -> None:
    _, job = job_of("algorithm=sft", "data=tiny_sft")
    assert job.env["VERL_USE_EXTERNAL_MODULES"] == "tp_cpu_platform"
    assert job.env["VERL_PLATFORM"] == "tp_cpu" and job.env["PYTHONPATH"] == "/repo/verl"
    assert job.env["VERL_FILE_LOGGER_PATH"] == "${TP_RUN_DIR}/metrics.jsonl" and job.env["WANDB_MODE"] == "disabled"
    assert "trainer.device=cpu" in job.argv and "engine.strategy=fsdp2" in job.argv
    assert job.entry_point == "verl.trainer.sft_trainer" and not job.uses_ray


def test_cpu_rl_job_uses_the_hf_rollout_and_a_private_ray() -> None:
    _, job = job_of()  # the default job: GRPO on tiny_math
    assert job.env["VERL_USE_EXTERNAL_MODULES"] == "tp_cpu_platform,tp_hf_rollout"
    assert "actor_rollout_ref.rollout.name=hf" in job.argv
    assert "+ray_kwargs.ray_init.address=local" in job.argv and job.uses_ray
    temp = next(a for a in job.argv if a.startswith("+ray_kwargs.ray_init._temp_dir="))
    assert len(temp.split("=", 1)[1]) < 40  # Ray's unix sockets live under it: keep it short
    assert job.env["RAY_AUTH_MODE"] == "disabled"


def test_builtin_reward_points_into_the_verl_folder() -> None:
    _, job = job_of("algorithm=grpo", "data=tiny_math")
    assert "reward.custom_reward_function.path=/repo/verl/tp_rewards.py" in job.argv


def test_dpo_runs_our_trainer_by_path_under_torchrun() -> None:
    _, job = job_of("algorithm=dpo", "data=tiny_pref")
    assert "/repo/verl/tp_dpo_trainer.py" in job.argv and "dpo.beta=0.1" in job.argv
    assert job.argv[:3] == ("python", "-m", "torch.distributed.run")


def test_paths_with_spaces_survive_hydra_and_the_shell() -> None:
    _, job = job_of("algorithm=sft", "data=tiny_sft", run_dir="/runs/my run", model_path="/models/it's tiny")
    assert "model.path='/models/it\\'s tiny'" in job.argv
    assert shlex.split(job.shell_line())[-len(job.argv) :] == list(job.argv)


def test_wandb_env_carries_the_run_identity_but_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "sk-secret")
    _, job = job_of(
        "logger=wandb",
        "logger.wandb.group=sweep1",
        "logger.wandb.tags=[a,b]",
        wandb_mode="offline",
        wandb_run_id="abc12345",
    )
    env = job.env
    assert (env["WANDB_MODE"], env["WANDB_RUN_ID"], env["WANDB_RESUME"]) == ("offline", "abc12345", "allow")
    assert env["WANDB_RUN_GROUP"] == "sweep1" and env["WANDB_TAGS"] == "a,b" and env["WANDB_DIR"] == "${TP_RUN_DIR}"
    assert "sk-secret" not in job.shell_line() and "WANDB_API_KEY" not in env
    assert "trainer.logger=[console,wandb,file]" in job.argv


def test_wandb_mode_auto_keeps_an_exported_wandb_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = RunSpec.from_config(compose_config(["logger=wandb"]))
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_wandb_mode(spec) == "offline"


def test_wandb_mode_auto(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spec = RunSpec.from_config(compose_config(["logger=wandb"]))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert resolve_wandb_mode(spec) == "offline"
    (tmp_path / "netrc").write_text("machine api.wandb.ai login user password x\n")
    assert resolve_wandb_mode(spec) == "online"


def test_passthrough_values_become_hydra_literals() -> None:
    _, job = job_of("+verl.trainer.log_val_generations=3", "+verl.trainer.balance_batch=false")
    assert "trainer.log_val_generations=3" in job.argv and "trainer.balance_batch=False" in job.argv


def test_total_steps_from_epochs_and_rows() -> None:
    spec = RunSpec.from_config(
        compose_config(["algorithm=sft", "data=tiny_sft", "train.steps=null", "algorithm.epochs=2"])
    )
    assert total_steps(spec, 256) == 2 * (256 // 32) and total_steps(spec, None) is None


def test_launch_script_runs_the_job_from_its_run_dir() -> None:
    _, job = job_of()
    text = launch_script(job)
    assert text.startswith("#!/usr/bin/env bash") and 'cd "$(dirname "$0")"' in text
    assert text.strip().endswith(job.shell_line())


def test_cpu_ppo_loads_the_value_model_without_flash_attn() -> None:
    _, job = job_of("algorithm=ppo", "data=tiny_math")
    assert job.env["VERL_USE_EXTERNAL_MODULES"] == "tp_cpu_platform,tp_hf_rollout,tp_cpu_valuehead"
    assert "critic.strategy=fsdp2" in job.argv


def test_the_job_runs_with_the_interpreter_that_made_the_run(tmp_path: Path) -> None:
    """launch.sh (and the dry run's command) name this interpreter, not a bare `python` found on PATH."""
    import subprocess
    import sys

    from conftest import REPO_ROOT

    for args in (["algorithm=sft", "data=tiny_sft"], ["algorithm=grpo"]):
        cmd = [sys.executable, str(REPO_ROOT / "train.py"), *args, "dry_run=true"]
        res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
        assert res.returncode == 0, res.stderr
        assert f" {sys.executable} -m " in res.stdout and " python -m " not in res.stdout


def test_multinode_rl_job_attaches_to_the_cluster_address_and_never_sizes_it() -> None:
    _, job = job_of("compute.nodes=2", "compute.gpus_per_node=2")
    ray_init = [a for a in job.argv if "ray_init" in a]
    assert ray_init == ["+ray_kwargs.ray_init.address='${TP_RAY_ADDRESS}'"]  # no num_cpus/num_gpus, no temp dir
    assert "trainer.nnodes=2" in job.argv and "trainer.n_gpus_per_node=2" in job.argv
    # on CPU every node declares logical GPUs (verl's workers ask for GPUs) and the private instance's CPUs
    assert dict(job.ray_node_resources) == {"CPU": 16, "GPU": 2}
    assert job.nnodes == 2 and job.uses_ray
    assert VerlJob.from_dict(job.to_dict()) == job


def test_one_node_rl_job_keeps_its_private_ray() -> None:
    _, job = job_of()
    assert "+ray_kwargs.ray_init.address=local" in job.argv
    assert "${TP_RAY_ADDRESS}" not in " ".join(job.argv)
