"""RunSpec: the frozen, validated form of a composed config.

One sub-model per config group. Field checks live on the models; checks across groups (algorithm vs data,
files on disk) live in `RunSpec.from_config`. Every failure is a `SpecError(key, problem, hint)`.
Batch arithmetic needs the world size, so it is checked after planning (`trainer_platform.batch`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from trainer_platform.data.settings import BadRows, FieldMap, SplitSettings
from trainer_platform.errors import SpecError, did_you_mean, value_hint
from trainer_platform.surgery.steps import OP_CLASSES, SurgerySpec

# verl 0.9.1's advantage estimators (verl.trainer.ppo.core_algos.AdvantageEstimator; a test keeps this in sync)
VERL_ESTIMATORS = (
    "gae",
    "grpo",
    "reinforce_plus_plus",
    "reinforce_plus_plus_baseline",
    "remax",
    "rloo",
    "opo",
    "grpo_passk",
    "gpg",
    "rloo_vectorized",
    "grpo_vectorized",
    "optimal_token_baseline",
    "tir_optimal_token_baseline",
    "gdpo",
)
# verl 0.9.1's policy losses (verl.trainer.ppo.core_algos.POLICY_LOSS_REGISTRY; a test keeps this in sync)
VERL_POLICY_LOSSES = (
    "vanilla",
    "dppo_tv",
    "dppo_kl",
    "gspo",
    "sapo",
    "gpg",
    "clip_cov",
    "kl_cov",
    "geo_mean",
    "dro",
    "cispo",
    "bypass_mode",
)

PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, lt=1)]


class _Strict(BaseModel):
    # allow_inf_nan=False: inf passes gt/ge bounds (algorithm.lr=inf), so no field takes inf or nan
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class _Optimisation(_Strict):
    name: str
    lr: PositiveFloat
    warmup_ratio: Fraction = 0.0
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    grad_clip: PositiveFloat = 1.0
    epochs: PositiveInt = 1
    batch_size: PositiveInt
    micro_batch_size_per_gpu: PositiveInt | None = None


class SFTAlgorithm(_Optimisation):
    kind: Literal["sft"]
    name: Literal["sft"]
    lr_schedule: Literal["constant", "cosine"] = "cosine"


class DPOAlgorithm(_Optimisation):
    kind: Literal["dpo"]
    name: Literal["dpo"]
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    beta: PositiveFloat = 0.1
    loss_type: Literal["sigmoid", "ipo"] = "sigmoid"
    label_smoothing: Annotated[float, Field(ge=0, lt=0.5)] = 0.0


class CriticSettings(_Strict):
    lr: PositiveFloat = 1e-5
    value_clip: PositiveFloat = 0.5


class FilterGroups(_Strict):
    enable: bool = True
    metric: Annotated[str, Field(min_length=1)] = "acc"
    max_inflight_gen_batches: PositiveInt = 1


class OverlongBuffer(_Strict):
    enable: bool = True
    len: PositiveInt = 4096
    penalty_factor: Annotated[float, Field(ge=0)] = 1.0


class RLAlgorithm(_Optimisation):
    kind: Literal["rl"]
    name: Literal["ppo", "grpo", "gspo", "dapo", "rloo", "reinforce_pp"]
    estimator: str
    mini_batch_size: PositiveInt
    rollout_n: PositiveInt = 1
    temperature: Annotated[float, Field(ge=0)] = 1.0
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    # -1: off (vLLM, SGLang and the hf rollout)
    top_k: Annotated[int, Field(ge=-1)] = -1
    ppo_epochs: PositiveInt = 1
    kl_loss: bool = False
    kl_coef: Annotated[float, Field(ge=0)] = 0.001
    kl_estimator: Literal["kl", "abs", "mse", "low_var_kl", "full"] = "low_var_kl"
    kl_in_reward: bool = False
    entropy_coef: Annotated[float, Field(ge=0)] = 0.0
    clip_ratio_low: Annotated[float, Field(ge=0)] = 0.2
    clip_ratio_high: Annotated[float, Field(ge=0)] = 0.2
    loss_mode: str = "vanilla"
    loss_agg_mode: Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"] = (
        "token-mean"
    )
    critic: CriticSettings | None = None
    gamma: Annotated[float, Field(ge=0, le=1)] = 1.0
    lam: Annotated[float, Field(ge=0, le=1)] = 1.0
    filter_groups: FilterGroups | None = None
    overlong_buffer: OverlongBuffer | None = None

    @property
    def uses_reference(self) -> bool:
        """verl builds a reference model when the KL shows up in the loss or the reward."""
        return self.kl_loss or self.kl_in_reward

    @property
    def uses_critic(self) -> bool:
        return self.estimator == "gae"


Algorithm = Annotated[SFTAlgorithm | RLAlgorithm | DPOAlgorithm, Field(discriminator="kind")]


class Arch(_Strict):
    family: str
    params: Annotated[int, Field(ge=0)]
    layers: PositiveInt
    hidden: PositiveInt
    heads: PositiveInt
    kv_heads: PositiveInt
    vocab: PositiveInt
    intermediate: PositiveInt
    tie_embeddings: bool = False
    # planner facts (conf/model/*.yaml documents each); null head_dim = hidden / heads, 0 experts = dense
    head_dim: PositiveInt | None = None
    experts: Annotated[int, Field(ge=0)] = 0
    experts_per_token: Annotated[int, Field(ge=0)] = 0
    moe_intermediate: PositiveInt | None = None


class ModelSpec(_Strict):
    name: str
    path: str | None
    builtin: Literal["tiny", "smollm2_135m"] | None = None
    trust_remote_code: bool = False
    # null = the planner decides (on only where memory needs it)
    gradient_checkpointing: bool | None = None
    # LoRA rank: 0 = full fine-tuning, null = full unless it cannot fit (then the planner picks LoRA)
    lora_rank: Annotated[int, Field(ge=0)] | None = None
    arch: Arch

    @property
    def is_local_path(self) -> bool:
        """A path (not a hub id like 'Qwen/Qwen2.5-7B-Instruct') the platform can check on this machine."""
        p = self.path or ""
        return p.startswith(("/", "./", "../", "~")) or Path(p).expanduser().exists()


class BuiltinRows(_Strict):
    train: PositiveInt = 256
    val: PositiveInt = 32
    seed: int = 0


def _absolute_path(path: str | None) -> str | None:
    """A user's file as an absolute path (the job runs in another directory; spec.yaml records where it was)."""
    return None if path is None else str(Path(path).expanduser().absolute())


class RewardTerm(_Strict):
    """One weighted term of a composite reward (conf/data/*.yaml `reward:` documents each field)."""

    scorer: str
    weight: float = 1.0
    options: dict[str, Any] = Field(default_factory=dict)
    path: str | None = None
    name: str = "compute_score"
    label: str | None = None

    @field_validator("path")
    @classmethod
    def absolute_path(cls, path: str | None) -> str | None:
        return _absolute_path(path)


class RewardSpec(_Strict):
    """How RL responses are scored (trainer_platform.rewards checks it; verl/tp_rewards.py scores)."""

    # null: custom when path is set, else verl's own scorer for each row's data_source
    scorer: str | None = None
    path: str | None = None
    name: str = "compute_score"
    options: dict[str, Any] = Field(default_factory=dict)
    terms: tuple[RewardTerm, ...] = ()

    @field_validator("path")
    @classmethod
    def absolute_path(cls, path: str | None) -> str | None:
        return _absolute_path(path)


DataFormat = Literal["messages", "prompts", "preference"]


class DataSpec(_Strict):
    name: str
    format: DataFormat
    builtin: Literal["sft", "math", "pref"] | None = None
    builtin_rows: BuiltinRows | None = None
    dir: str | None = None
    train_files: tuple[str, ...] | None = None
    val_files: tuple[str, ...] | None = None
    max_length: PositiveInt | None = None
    max_prompt_length: PositiveInt | None = None
    max_response_length: PositiveInt | None = None
    reward: RewardSpec | None = None
    # user data: a file inside an installed Python package read when no files are given (package/relative/path)
    packaged: str | None = None
    # user data: how source fields become verl's (null: verl's own names), the validation split, bad rows
    fields: FieldMap | None = None
    split: SplitSettings | None = None
    bad_rows: BadRows | None = None


class ComputeSpec(_Strict):
    name: str
    accelerator: str
    gpu_memory_gib: PositiveFloat | None = None
    nodes: PositiveInt = 1
    gpus_per_node: PositiveInt | None = None
    rollout_engine: Literal["auto", "vllm", "sglang", "hf"] = "auto"
    rollout_tp: PositiveInt | None = None
    # memory settings; null = the planner picks (conf/compute/*.yaml documents each)
    rollout_memory_fraction: Annotated[float, Field(gt=0, lt=1)] | None = None
    fsdp_strategy: Literal["fsdp", "fsdp2"] | None = None
    param_offload: bool | None = None
    optimizer_offload: bool | None = None
    dynamic_batching: bool | None = None
    max_tokens_per_gpu: PositiveInt | None = None
    ulysses: PositiveInt | None = None
    safety_margin: Annotated[float, Field(ge=0, lt=1)] = 0.1


class LauncherSpec(BaseModel):
    # the launcher's own options (launcher.wait, launcher.host, ...) are validated by the launcher itself
    # (launchers/options.py), which knows its names and suggests the closest one for a typo
    model_config = ConfigDict(extra="allow", frozen=True)

    name: str


class WandbSettings(_Strict):
    project: str = "trainer_platform"
    entity: str | None = None
    group: str | None = None
    tags: tuple[str, ...] = ()
    mode: Literal["auto", "online", "offline"] = "auto"


class LoggerSpec(_Strict):
    backends: tuple[Literal["console", "wandb"], ...] = ("console",)
    wandb: WandbSettings | None = None


class TrainSettings(_Strict):
    steps: PositiveInt | None = None
    save_every: PositiveInt | None = None
    eval_every: PositiveInt | None = None
    val_before_train: bool = False
    seed: int = 42


class RunSpec(_Strict):
    name: str | None = None
    run_root: str = "runs"
    dry_run: bool = False
    verbose: bool = False
    resume: bool = False
    resume_dir: str | None = None
    train: TrainSettings = TrainSettings()
    algorithm: Algorithm
    model: ModelSpec
    data: DataSpec
    compute: ComputeSpec
    launcher: LauncherSpec
    logger: LoggerSpec
    surgery: SurgerySpec = SurgerySpec()
    # the diagnostics rules' settings, validated by trainer_platform.diagnostics (standard library only, shipped
    # beside the job): see conf/diagnostics/
    diagnostics: dict[str, Any] = Field(default_factory=dict)
    verl: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> RunSpec:
        """Validate a composed config (plain containers, interpolations resolved) into a RunSpec."""
        from trainer_platform.checks import check_format_fits_kind, check_spec
        from trainer_platform.user_values import apply_user_paths

        cfg = apply_user_paths(cfg)
        algorithm, data = cfg.get("algorithm"), cfg.get("data")
        if isinstance(algorithm, Mapping) and isinstance(data, Mapping):
            check_format_fits_kind(algorithm, data)
        try:
            spec = cls.model_validate(dict(cfg))
        except ValidationError as err:
            raise _to_spec_error(err, cls, cfg) from None
        _check_diagnostics(spec.diagnostics)
        check_spec(spec)
        return spec

    def to_config(self) -> dict[str, Any]:
        """Plain-data form (spec.yaml); `RunSpec.from_config(spec.to_config())` round-trips."""
        return self.model_dump(mode="json")


def _check_diagnostics(settings: Mapping[str, Any]) -> None:
    from trainer_platform.diagnostics import ConfigError, config_from_dict

    try:
        config_from_dict(settings)
    except ConfigError as e:
        raise SpecError(e.key, e.problem, e.hint) from None


def upgrade_saved_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """A spec.yaml written by an earlier version of the platform, in today's shape, so runs made before a change
    of the spec can still be resumed. Each rule names the change it bridges; anything else is validated as is."""
    surgery = cfg.get("surgery")
    # surgery's untyped `ops` list (always empty: validation refused any op) became typed `steps`
    if isinstance(surgery, Mapping) and "ops" in surgery and "steps" not in surgery and not surgery["ops"]:
        cfg = {**cfg, "surgery": {**{k: v for k, v in surgery.items() if k != "ops"}, "steps": []}}
    return cfg


def _to_spec_error(err: ValidationError, root: type[BaseModel], cfg: Mapping[str, Any] | None = None) -> SpecError:
    first = err.errors()[0]
    raw_loc = [str(part) for part in first["loc"]]
    loc = [part for part in raw_loc if part not in _ALGORITHM_KINDS and part not in OP_CLASSES and not _union_tag(part)]
    key = ".".join(_shared_surgery_key(loc, cfg or {})) or "<config>"
    kind = first["type"]
    if kind == "extra_forbidden":
        known = _fields_at(root, raw_loc[:-1])
        guess = did_you_mean(loc[-1], known)
        hint = guess or ("known keys here: " + ", ".join(known) if known else "remove it")
        return SpecError(key, "unknown key", f"{hint} (raw verl keys go under `verl.`)")
    if kind == "missing":
        return SpecError(key, "is required but missing", "set it in the config group file or on the command line")
    if kind in ("literal_error", "union_tag_invalid"):
        expected = first.get("ctx", {}).get("expected", "")
        return SpecError(key, f"invalid value {first.get('input')!r}", f"expected {expected}")
    return SpecError(
        key, f"{first['msg'].lower()} (got {first.get('input')!r})", value_hint(key, kind, first.get("input"))
    )


def _shared_surgery_key(loc: list[str], cfg: Mapping[str, Any]) -> list[str]:
    """The key the user set for an error in a surgery step's field that came from the group's shared top-level key
    (`surgery.t=2`, not `surgery.steps.0.t`: SurgerySpec copies shared keys into the steps)."""
    surgery = cfg.get("surgery")
    if len(loc) < 4 or loc[:2] != ["surgery", "steps"] or not isinstance(surgery, Mapping):
        return loc
    steps = surgery.get("steps")
    index = int(loc[2]) if loc[2].isdigit() else -1
    step = steps[index] if isinstance(steps, list) and 0 <= index < len(steps) else None
    if isinstance(step, Mapping) and loc[3] not in step and surgery.get(loc[3]) is not None:
        return ["surgery", *loc[3:]]
    return loc


_ALGORITHM_KINDS: dict[str, type[BaseModel]] = {"sft": SFTAlgorithm, "rl": RLAlgorithm, "dpo": DPOAlgorithm}


def _union_tag(part: str) -> bool:
    """pydantic's names for the member of a union an error is in (`constrained-float`, `tuple[...]`)."""
    return part.startswith(("constrained-", "tuple[", "list[", "function-"))


def _fields_at(root: type[BaseModel], raw_loc: list[str]) -> list[str]:
    """Field names of the model at a pydantic error location (union tags pick the algorithm class)."""
    model: type[BaseModel] | None = root
    for part in raw_loc:
        if part in OP_CLASSES:  # a surgery step's op tag: the fields are that operation's
            model = OP_CLASSES[part]
            continue
        if part.isdigit():  # a list index (surgery.steps.0)
            continue
        if model is None and part in _ALGORITHM_KINDS:
            model = _ALGORITHM_KINDS[part]
            continue
        if model is None:
            return []
        field = model.model_fields.get(part)
        if field is None:
            return []
        if part == "algorithm" and model is root:
            model = None  # resolved by the union tag that follows
            continue
        args = getattr(field.annotation, "__args__", (field.annotation,))
        nested = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        model = nested[0] if nested else None
    return sorted(model.model_fields) if model is not None else []
