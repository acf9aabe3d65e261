"""RunSpec + Plan -> VerlJob: the one place our vocabulary is mapped onto verl's config keys (with its three
helpers: verl_memory.py for memory settings, verl_ray.py for where the Ray driver runs, verl_cpu.py for the CPU path).

Pure: no I/O, no subprocess, no imports of verl/torch/ray. Everything it needs from the outside world (prepared
model and data paths, the run directory, the W&B mode) arrives in `JobInputs`.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainer_platform.batch import BatchMath
from trainer_platform.hydra_values import flatten_passthrough, literal, merge_passthrough, quote, quote_list
from trainer_platform.job import RUN_DIR, VERL_EXT, VerlJob
from trainer_platform.planner import Plan
from trainer_platform.rewards import CUSTOM, LIBRARY_FILE, LIBRARY_FUNCTION, VERL, reward_kwargs, scorer_of, user_files
from trainer_platform.spec import DPOAlgorithm, RLAlgorithm, RunSpec, SFTAlgorithm
from trainer_platform.steps import verl_total_epochs
from trainer_platform.verl_cpu import cpu_engine_overrides, cpu_rl_overrides
from trainer_platform.verl_memory import engine_memory_overrides, gradient_checkpointing, rl_memory_overrides
from trainer_platform.verl_ray import private_ray_dir, ray_node_resources, ray_overrides

SFT_ENTRY = "verl.trainer.sft_trainer"
RL_ENTRY = "verl.trainer.main_ppo"
DPO_SCRIPT = "tp_dpo_trainer.py"
CPU_PLATFORM_MODULE = "tp_cpu_platform"
HF_ROLLOUT_MODULE = "tp_hf_rollout"
CPU_VALUEHEAD_MODULE = "tp_cpu_valuehead"
BUILTIN_REWARD = LIBRARY_FILE
# a checkpoint at the end only: verl RL saves on the last step when save_freq > 0
_SAVE_AT_END_ONLY = 1_000_000


@dataclass(frozen=True)
class JobInputs:
    """What the job builder needs from outside: prepared files and where the run lives."""

    # model directory or hub id verl loads
    model_path: str
    # training parquet files
    train_files: tuple[str, ...]
    # validation parquet files (may be empty)
    val_files: tuple[str, ...]
    # absolute run directory on this machine (names the run; the job itself refers to it as ${TP_RUN_DIR})
    run_dir: str
    # the platform's verl/ folder as the job sees it (our modules verl imports): ${TP_VERL_EXT} keeps the job
    # relocatable, the launcher says where it lies
    verl_ext_dir: str = VERL_EXT
    # rows in the training files (None when unknown): sets the step count of epoch-based runs
    train_rows: int | None = None
    # resolved W&B mode: online | offline (used when the wandb backend is on)
    wandb_mode: str = "offline"
    # W&B run id kept in the run dir, so a resumed run continues the same W&B run
    wandb_run_id: str | None = None
    # the Python interpreter that runs the job (the one that made the run, as submitit does)
    python: str = "python"


def build_job(spec: RunSpec, plan: Plan, batch: BatchMath, inputs: JobInputs) -> VerlJob:
    """Translate a validated spec into exactly one verl job."""
    algo = spec.algorithm
    if isinstance(algo, SFTAlgorithm):
        overrides = _engine_trainer_overrides(spec, algo, plan, batch, inputs)
        argv = _torchrun(plan, inputs.python) + ["-m", SFT_ENTRY]
        entry, uses_ray = SFT_ENTRY, False
    elif isinstance(algo, DPOAlgorithm):
        overrides = _dpo_overrides(spec, algo, plan, batch, inputs)
        argv = _torchrun(plan, inputs.python) + [f"{inputs.verl_ext_dir}/{DPO_SCRIPT}"]
        entry, uses_ray = DPO_SCRIPT, False
    else:
        overrides = _rl_overrides(spec, algo, plan, batch, inputs)
        argv = [inputs.python, "-m", RL_ENTRY]
        entry, uses_ray = RL_ENTRY, True
    overrides = merge_passthrough(overrides, flatten_passthrough(spec.verl))
    return VerlJob(
        entry_point=entry,
        argv=tuple(argv + overrides),
        env=_env(spec, plan, inputs),
        nnodes=plan.nnodes,
        nprocs_per_node=plan.gpus_per_node,
        gpus_per_node=0 if plan.on_cpu else plan.gpus_per_node,
        uses_ray=uses_ray,
        outputs={"metrics": "metrics.jsonl", "checkpoints": "checkpoints", "log": "train.log"},
        files=_input_files(spec, inputs),
        ray_node_resources=ray_node_resources(plan) if uses_ray else {},
        scratch_dirs=(ray_dir,) if uses_ray and (ray_dir := private_ray_dir(spec, plan, inputs.run_dir)) else (),
    )


def _input_files(spec: RunSpec, inputs: JobInputs) -> tuple[str, ...]:
    """Local files and folders the job reads: a remote launcher ships them (a hub id is not a local path)."""
    files = [*inputs.train_files, *inputs.val_files]
    if inputs.model_path.startswith("/"):
        files.insert(0, inputs.model_path)
    files += user_files(spec.data.reward)
    return tuple(dict.fromkeys(f for f in files if f.startswith("/")))


def _torchrun(plan: Plan, python: str) -> list[str]:
    argv = [python, "-m", "torch.distributed.run", f"--nproc_per_node={plan.gpus_per_node}"]
    if plan.nnodes == 1:
        return [*argv, "--standalone"]
    # multi-node: a multi-node launcher sets MASTER_ADDR/MASTER_PORT on every node and runs the line through a shell
    return [*argv, f"--nnodes={plan.nnodes}", "--rdzv_backend=c10d", "--rdzv_endpoint=${MASTER_ADDR}:${MASTER_PORT}"]


def _trainer(spec: RunSpec, plan: Plan, inputs: JobInputs) -> list[str]:
    """trainer.* keys shared by every verl entry point. A step-based run gives verl the exact step count and an
    epoch bound it never reaches first (the data repeats); an epoch-based run lets verl count its batches."""
    logger = [*spec.logger.backends, "file"]
    wandb = spec.logger.wandb
    out = [
        f"trainer.project_name={wandb.project if wandb else 'trainer_platform'}",
        f"trainer.experiment_name={quote(_run_name(inputs))}",
        f"trainer.logger=[{','.join(logger)}]",
        f"trainer.default_local_dir={quote(RUN_DIR + '/checkpoints')}",
        "trainer.resume_mode=auto",
        f"trainer.total_epochs={verl_total_epochs(spec)}",
        f"trainer.nnodes={plan.nnodes}",
        f"trainer.n_gpus_per_node={plan.gpus_per_node}",
        f"trainer.test_freq={spec.train.eval_every or -1}",
        f"trainer.seed={spec.train.seed}" if not isinstance(spec.algorithm, RLAlgorithm) else "",
    ]
    if spec.train.steps is not None:
        out.append(f"trainer.total_training_steps={spec.train.steps}")
    if plan.on_cpu:
        out.append("trainer.device=cpu")
    return [o for o in out if o]


def _engine_trainer_overrides(
    spec: RunSpec, algo: SFTAlgorithm | DPOAlgorithm, plan: Plan, batch: BatchMath, inputs: JobInputs
) -> list[str]:
    """Keys of verl's `sft_trainer_engine` config, which both verl's SFT trainer and our DPO trainer compose."""
    out = [
        f"data.train_files={quote_list(inputs.train_files)}",
        f"data.val_files={quote_list(inputs.val_files) if inputs.val_files else 'null'}",
        f"data.train_batch_size={algo.batch_size}",
        f"data.micro_batch_size_per_gpu={batch.micro_batch_size_per_gpu}",
        f"data.max_length={spec.data.max_length}",
        f"model.path={quote(inputs.model_path)}",
        f"model.trust_remote_code={spec.model.trust_remote_code}",
        f"model.enable_gradient_checkpointing={gradient_checkpointing(plan, spec.model.gradient_checkpointing)}",
        *_optim("optim", algo.lr, algo.weight_decay, algo.warmup_ratio, algo.grad_clip, algo.lr_schedule),
        f"trainer.save_freq={spec.train.save_every or -1}",
        *_trainer(spec, plan, inputs),
    ]
    out += engine_memory_overrides(plan, isinstance(algo, SFTAlgorithm), spec.compute.fsdp_strategy)
    if plan.on_cpu:
        # dataloader workers only compete with the trainer for the few cores a CPU run has
        out += [*cpu_engine_overrides("engine", "model"), "data.num_workers=0"]
    return out


def _dpo_overrides(spec: RunSpec, algo: DPOAlgorithm, plan: Plan, batch: BatchMath, inputs: JobInputs) -> list[str]:
    """Our DPO trainer (verl/tp_dpo_trainer.py) composes verl's sft_trainer_engine plus `dpo.*` and pair keys."""
    out = [
        *_engine_trainer_overrides(spec, algo, plan, batch, inputs),
        # micro batches counted in whole pairs
        "data.use_dynamic_bsz=False",
        f"dpo.beta={algo.beta}",
        f"dpo.loss_type={algo.loss_type}",
        f"dpo.label_smoothing={algo.label_smoothing}",
    ]
    if plan.on_cpu:
        # fp32 compute on CPU: summed log-prob margins are too coarse in bf16 for the DPO loss to be exact
        out.append("+engine.mixed_precision.param_dtype=fp32")
    return out


def _rl_overrides(spec: RunSpec, algo: RLAlgorithm, plan: Plan, batch: BatchMath, inputs: JobInputs) -> list[str]:
    data = spec.data
    micro = batch.micro_batch_size_per_gpu
    arr = "actor_rollout_ref"
    val_files = inputs.val_files or inputs.train_files
    out = [
        f"algorithm.adv_estimator={algo.estimator}",
        f"algorithm.use_kl_in_reward={algo.kl_in_reward}",
        f"algorithm.kl_penalty={algo.kl_estimator}",
        f"algorithm.kl_ctrl.kl_coef={algo.kl_coef}",
        f"algorithm.gamma={algo.gamma}",
        f"algorithm.lam={algo.lam}",
        f"data.train_files={quote_list(inputs.train_files)}",
        f"data.val_files={quote_list(val_files)}",
        f"data.train_batch_size={algo.batch_size}",
        f"data.max_prompt_length={data.max_prompt_length}",
        f"data.max_response_length={data.max_response_length}",
        "data.filter_overlong_prompts=True",
        f"data.seed={spec.train.seed}",
        f"{arr}.model.path={quote(inputs.model_path)}",
        f"{arr}.model.trust_remote_code={spec.model.trust_remote_code}",
        f"{arr}.model.enable_gradient_checkpointing={gradient_checkpointing(plan, spec.model.gradient_checkpointing)}",
        *_optim(f"{arr}.actor.optim", algo.lr, algo.weight_decay, algo.warmup_ratio, None, None),
        f"{arr}.actor.grad_clip={algo.grad_clip}",
        f"{arr}.actor.ppo_mini_batch_size={algo.mini_batch_size}",
        f"{arr}.actor.ppo_micro_batch_size_per_gpu={micro}",
        f"{arr}.actor.ppo_epochs={algo.ppo_epochs}",
        f"{arr}.actor.use_kl_loss={algo.kl_loss}",
        f"{arr}.actor.kl_loss_coef={algo.kl_coef}",
        f"{arr}.actor.kl_loss_type={algo.kl_estimator}",
        f"{arr}.actor.entropy_coeff={algo.entropy_coef}",
        f"{arr}.actor.clip_ratio_low={algo.clip_ratio_low}",
        f"{arr}.actor.clip_ratio_high={algo.clip_ratio_high}",
        f"{arr}.actor.policy_loss.loss_mode={algo.loss_mode}",
        f"{arr}.actor.loss_agg_mode={algo.loss_agg_mode}",
        f"{arr}.rollout.name={plan.rollout_engine}",
        f"{arr}.rollout.n={algo.rollout_n}",
        f"{arr}.rollout.temperature={algo.temperature}",
        f"{arr}.rollout.top_p={algo.top_p}",
        f"{arr}.rollout.top_k={algo.top_k}",
        f"{arr}.rollout.tensor_model_parallel_size={plan.rollout_tp}",
        f"{arr}.rollout.log_prob_micro_batch_size_per_gpu={micro}",
        f"{arr}.ref.log_prob_micro_batch_size_per_gpu={micro}",
        # verl RL saves the last step whenever save_freq > 0
        f"trainer.save_freq={spec.train.save_every or _SAVE_AT_END_ONLY}",
        f"trainer.val_before_train={spec.train.val_before_train}",
        *_trainer(spec, plan, inputs),
    ]
    out += rl_memory_overrides(plan, algo.critic is not None, spec.compute.fsdp_strategy)
    if algo.critic is not None:
        out += [
            f"critic.model.path={quote(inputs.model_path)}",
            f"critic.model.trust_remote_code={spec.model.trust_remote_code}",
            f"critic.optim.lr={algo.critic.lr}",
            f"critic.cliprange_value={algo.critic.value_clip}",
            f"critic.ppo_micro_batch_size_per_gpu={micro}",
        ]
    out += _reward_overrides(spec, algo, inputs)
    out += ray_overrides(spec, plan, inputs.run_dir)
    if plan.on_cpu:
        out += cpu_rl_overrides(algo)
    return out


def _reward_overrides(spec: RunSpec, algo: RLAlgorithm, inputs: JobInputs) -> list[str]:
    out: list[str] = []
    reward = spec.data.reward
    scorer = scorer_of(reward) if reward is not None else VERL
    if reward is not None and scorer != VERL:
        custom = scorer == CUSTOM
        path = quote(reward.path or "") if custom else f"{inputs.verl_ext_dir}/{BUILTIN_REWARD}"
        out += [
            f"reward.custom_reward_function.path={path}",
            f"reward.custom_reward_function.name={quote(reward.name) if custom else LIBRARY_FUNCTION}",
        ]
        kwargs = reward_kwargs(reward)
        if kwargs:
            out.append(f"+reward.custom_reward_function.reward_kwargs={literal(kwargs)}")
    if algo.filter_groups is not None:
        fg = algo.filter_groups
        out += [
            f"algorithm.filter_groups.enable={fg.enable}",
            f"algorithm.filter_groups.metric={fg.metric}",
            f"algorithm.filter_groups.max_inflight_gen_batches={fg.max_inflight_gen_batches}",
        ]
    if algo.name == "dapo":
        out.append("reward.reward_manager.name=dapo")
    if algo.overlong_buffer is not None:
        ob = algo.overlong_buffer
        out += [
            f"+reward.reward_kwargs.overlong_buffer_cfg.enable={ob.enable}",
            f"+reward.reward_kwargs.overlong_buffer_cfg.len={_overlong_len(ob.len, spec.data.max_response_length)}",
            f"+reward.reward_kwargs.overlong_buffer_cfg.penalty_factor={ob.penalty_factor}",
            "+reward.reward_kwargs.overlong_buffer_cfg.log=True",
            f"+reward.reward_kwargs.max_resp_len={spec.data.max_response_length}",
        ]
    return out


def _overlong_len(buffer: int, max_response: int | None) -> int:
    """The overlong buffer must be shorter than the response budget: at most a quarter of it for short budgets."""
    if max_response is None or buffer < max_response:
        return buffer
    return max(1, max_response // 4)


def _optim(prefix: str, lr: float, wd: float, warmup: float, clip: float | None, schedule: str | None) -> list[str]:
    out = [f"{prefix}.lr={lr}", f"{prefix}.weight_decay={wd}", f"{prefix}.lr_warmup_steps_ratio={warmup}"]
    if clip is not None:
        out.append(f"{prefix}.clip_grad={clip}")
    if schedule is not None:
        out.append(f"{prefix}.lr_scheduler_type={schedule}")
    return out


def _env(spec: RunSpec, plan: Plan, inputs: JobInputs) -> dict[str, str]:
    env = {
        "PYTHONPATH": inputs.verl_ext_dir,
        "VERL_FILE_LOGGER_PATH": f"{RUN_DIR}/metrics.jsonl",
        "TOKENIZERS_PARALLELISM": "false",
    }
    modules = []
    if plan.on_cpu:
        modules.append(CPU_PLATFORM_MODULE)
        env.update({"VERL_PLATFORM": "tp_cpu", "VERL_ENGINE_DEVICE": "cuda"})
        if isinstance(spec.algorithm, RLAlgorithm):
            # verl's transfer queue sets torch to 8 threads around each of its puts and gets (default
            # TQ_NUM_THREADS) and warns each time that is more than the physical cores: ~400 warnings a step on a
            # small CPU machine. A CPU run's workers share the machine's cores anyway.
            env["TQ_NUM_THREADS"] = "1"
    if plan.rollout_engine == "hf":
        modules.append(HF_ROLLOUT_MODULE)
    if plan.on_cpu and isinstance(spec.algorithm, RLAlgorithm) and spec.algorithm.uses_critic:
        modules.append(CPU_VALUEHEAD_MODULE)  # verl hard-codes flash-attn for the value model
    if modules:
        env["VERL_USE_EXTERNAL_MODULES"] = ",".join(modules)
    if isinstance(spec.algorithm, RLAlgorithm) and spec.launcher.name in ("local", "ssh"):
        env["RAY_AUTH_MODE"] = "disabled"
    env.update(_wandb_env(spec, inputs))
    return env


def _wandb_env(spec: RunSpec, inputs: JobInputs) -> dict[str, str]:
    wandb = spec.logger.wandb
    if "wandb" not in spec.logger.backends or wandb is None:
        return {"WANDB_MODE": "disabled"}
    env = {"WANDB_MODE": inputs.wandb_mode, "WANDB_DIR": RUN_DIR, "WANDB_RESUME": "allow"}
    if inputs.wandb_run_id:
        env["WANDB_RUN_ID"] = inputs.wandb_run_id
    if wandb.entity:
        env["WANDB_ENTITY"] = wandb.entity
    if wandb.group:
        env["WANDB_RUN_GROUP"] = wandb.group
    if wandb.tags:
        env["WANDB_TAGS"] = ",".join(wandb.tags)
    return env


def _run_name(inputs: JobInputs) -> str:
    return inputs.run_dir.rstrip("/").rsplit("/", 1)[-1]
