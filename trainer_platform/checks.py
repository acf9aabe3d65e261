"""Checks across config groups: algorithm vs data, files on disk, model directory.

Called by `RunSpec.from_config`; each failure is a `SpecError` naming the key or file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer_platform.errors import SpecError, choices_hint

if TYPE_CHECKING:
    from trainer_platform.spec import RunSpec

# which data format each algorithm family trains on
FORMAT_FOR_KIND = {"sft": "messages", "rl": "prompts", "dpo": "preference"}
# columns each data format must have (verl's names)
REQUIRED_COLUMNS = {
    "messages": ("messages",),
    "prompts": ("prompt", "data_source"),
    "preference": ("prompt", "chosen", "rejected"),
}
# data presets whose files a given format suits, for hints
_DATA_FOR_KIND = {"sft": "tiny_sft", "rl": "tiny_math or gsm8k", "dpo": "tiny_pref"}


def check_spec(spec: RunSpec) -> None:
    """Raise SpecError for the first cross-group problem found."""
    _check_data_fits_algorithm(spec)
    _check_algorithm(spec)
    _check_model(spec)
    _check_data_files(spec)
    if "wandb" in spec.logger.backends and spec.logger.wandb is None:
        raise SpecError("logger.wandb", "the wandb backend needs its settings block", "use logger=wandb")
    if spec.surgery.ops:
        raise SpecError(
            "surgery.ops",
            "model surgery operations are not available in this version",
            "use surgery=none (merges, averaging and layer edits arrive with the model-surgery feature)",
        )


def _check_algorithm(spec: RunSpec) -> None:
    from trainer_platform.spec import VERL_ESTIMATORS, RLAlgorithm

    algo = spec.algorithm
    if not isinstance(algo, RLAlgorithm):
        return
    if algo.estimator not in VERL_ESTIMATORS:
        raise SpecError(
            "algorithm.estimator",
            f"unknown advantage estimator {algo.estimator!r}",
            choices_hint(algo.estimator, VERL_ESTIMATORS),
        )
    if algo.uses_critic and algo.critic is None:
        raise SpecError(
            "algorithm.critic",
            "the gae estimator trains a critic but no critic settings are given",
            "add algorithm.critic: {lr: 1e-5, value_clip: 0.5} or use algorithm=ppo",
        )
    if algo.batch_size < algo.mini_batch_size:
        raise SpecError(
            "algorithm.mini_batch_size",
            f"mini batch ({algo.mini_batch_size}) is larger than the batch ({algo.batch_size})",
            f"set algorithm.mini_batch_size to a divisor of {algo.batch_size}",
        )
    if algo.estimator in ("grpo", "rloo", "grpo_passk", "gdpo", "opo") and algo.rollout_n < 2:
        raise SpecError(
            "algorithm.rollout_n",
            f"the {algo.estimator} estimator compares responses within a group but rollout_n is {algo.rollout_n}",
            "set algorithm.rollout_n to 2 or more (typically 4-16)",
        )


def check_format_fits_kind(algorithm: Mapping[str, Any], data: Mapping[str, Any]) -> None:
    """Algorithm family vs data format, checked on the raw config first: a mismatch explains the keys a tiny data
    preset sets for its own algorithm family better than 'unknown key' would."""
    kind, fmt = algorithm.get("kind"), data.get("format")
    needed = FORMAT_FOR_KIND.get(str(kind))
    if needed is None or fmt is None or fmt == needed:
        return
    raise SpecError(
        "data",
        f"{algorithm.get('name')} trains on {needed} data but data={data.get('name')} holds {fmt}",
        f"pick a {needed} dataset, e.g. data={_DATA_FOR_KIND[str(kind)]}",
    )


def _check_data_fits_algorithm(spec: RunSpec) -> None:
    kind = spec.algorithm.kind
    check_format_fits_kind(
        {"kind": kind, "name": spec.algorithm.name}, {"format": spec.data.format, "name": spec.data.name}
    )
    if kind == "rl":
        for key in ("max_prompt_length", "max_response_length"):
            if getattr(spec.data, key) is None:
                raise SpecError(f"data.{key}", "RL needs a token budget for prompts and responses", f"set data.{key}")
    elif spec.data.max_length is None:
        raise SpecError(
            "data.max_length", f"{spec.algorithm.name} needs a maximum sequence length", "set data.max_length (tokens)"
        )


def _check_model(spec: RunSpec) -> None:
    model = spec.model
    if model.builtin is not None:
        return
    if not model.path:
        raise SpecError("model.path", "no model path given", "set model.path to a local directory or a hub id")
    if not model.is_local_path:
        return  # a hub id: fetched by verl on the training nodes
    path = Path(model.path).expanduser()
    if not path.is_dir():
        raise SpecError(
            "model.path", f"directory {path} does not exist", "point model.path at a Hugging Face model dir"
        )
    if not (path / "config.json").is_file():
        raise SpecError(
            "model.path",
            f"{path} has no config.json, so it is not a Hugging Face model directory",
            "point model.path at the folder that holds config.json and the weights",
        )


def _check_data_files(spec: RunSpec) -> None:
    data = spec.data
    if data.builtin is not None:
        return
    if not data.train_files:
        raise SpecError("data.train_files", "no training files given", "set data.train_files to parquet files")
    reward_path = data.reward.path if data.reward else None
    for key, files in (("data.train_files", data.train_files), ("data.val_files", data.val_files or ())):
        for name in files:
            _check_parquet(key, Path(name).expanduser(), data.format, has_reward_fn=reward_path is not None)
    if reward_path not in (None, "builtin") and not Path(str(reward_path)).expanduser().is_file():
        raise SpecError(
            "data.reward.path",
            f"reward function file {reward_path} does not exist",
            "point it at a python file defining the function named by data.reward.name",
        )


def _check_parquet(key: str, path: Path, fmt: str, *, has_reward_fn: bool) -> None:
    if not path.is_file():
        raise SpecError(
            key,
            f"file {path} does not exist",
            "create it (verl's examples/data_preprocess scripts write this format) or fix the path",
        )
    try:
        import pyarrow.parquet as pq

        columns = set(pq.read_schema(path).names)
    except Exception as exc:  # a corrupt or non-parquet file
        raise SpecError(
            key,
            f"{path} is not a readable parquet file ({exc.__class__.__name__})",
            "write the data with pandas.DataFrame.to_parquet or pyarrow",
        ) from None
    missing = [c for c in REQUIRED_COLUMNS[fmt] if c not in columns]
    if fmt == "prompts" and "reward_model" not in columns and not has_reward_fn:
        missing.append("reward_model (ground truth) or a data.reward.path function")
    if missing:
        raise SpecError(
            key,
            f"{path} lacks column(s) {', '.join(missing)} needed for {fmt} data (has: {', '.join(sorted(columns))})",
            _format_hint(fmt),
        )


def _format_hint(fmt: str) -> str:
    return {
        "messages": "SFT rows need `messages`: a list of {role, content} turns",
        "prompts": "RL rows need `prompt` (chat turns), `data_source` and `reward_model: {ground_truth}`",
        "preference": "DPO rows need `prompt` (chat turns), `chosen` and `rejected` (strings)",
    }[fmt]
