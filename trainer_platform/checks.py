"""Checks across config groups: algorithm vs data, files on disk, model directory.

Called by `RunSpec.from_config`; each failure is a `SpecError` naming the key or file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer_platform.data.files import MissingFileError, check_model_dir
from trainer_platform.errors import SpecError, choices_hint
from trainer_platform.rewards import VERL, check_reward, scorer_of

if TYPE_CHECKING:
    from trainer_platform.spec import RunSpec

# which data format each algorithm family trains on
FORMAT_FOR_KIND = {"sft": "messages", "rl": "prompts", "dpo": "preference"}
# data presets whose files a given format suits, for hints
_DATA_FOR_KIND = {"sft": "tiny_sft", "rl": "tiny_math or gsm8k", "dpo": "tiny_pref"}


def check_spec(spec: RunSpec) -> None:
    """Raise SpecError for the first cross-group problem found (files missing here only warn when deferred)."""
    from trainer_platform.names import check_names
    from trainer_platform.verl_keys import check_passthrough

    check_names(spec)
    check_passthrough(spec.verl)
    _check_data_fits_algorithm(spec)
    check_effective(spec)
    _check_algorithm(spec)
    _check_model(spec, defers_missing_files(spec))
    _check_data_files(spec, defers_missing_files(spec))
    if "wandb" in spec.logger.backends and spec.logger.wandb is None:
        raise SpecError("logger.wandb", "the wandb backend needs its settings block", "use logger=wandb")


def _check_algorithm(spec: RunSpec) -> None:
    from trainer_platform.spec import VERL_ESTIMATORS, VERL_POLICY_LOSSES, RLAlgorithm

    algo = spec.algorithm
    if not isinstance(algo, RLAlgorithm):
        return
    if algo.estimator not in VERL_ESTIMATORS:
        raise SpecError(
            "algorithm.estimator",
            f"unknown advantage estimator {algo.estimator!r}",
            choices_hint(algo.estimator, VERL_ESTIMATORS),
        )
    if algo.loss_mode not in VERL_POLICY_LOSSES:
        raise SpecError(
            "algorithm.loss_mode",
            f"unknown policy loss {algo.loss_mode!r}",
            choices_hint(algo.loss_mode, VERL_POLICY_LOSSES),
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


def _check_model(spec: RunSpec, defer_missing: bool) -> None:
    model = spec.model
    if model.builtin is not None:
        return
    if not model.path:
        raise SpecError("model.path", "no model path given", "set model.path to a local directory or a hub id")
    if not model.is_local_path:
        return  # a hub id: fetched by verl on the training nodes
    try:
        check_model_dir(Path(model.path).expanduser())
    except MissingFileError:
        if not defer_missing:
            raise


def _check_data_files(spec: RunSpec, defer_missing: bool) -> None:
    data = spec.data
    if data.reward is not None and spec.algorithm.kind == "rl":
        check_reward(data.reward)
    # verl 0.9.1's reward managers (naive, dapo) read reward_model.ground_truth of every row, whatever the function
    # (a form-only scorer gets an empty ground truth): the prepared RL rows always carry it (data/mapping.py)
    from trainer_platform.data.validate import check_sources

    check_sources(spec, defer_missing, missing_data_hint(spec))


def defers_missing_files(spec: RunSpec) -> bool:
    """Files not on this machine are a warning (checked again where the job runs) for a dry run or a launcher that
    runs the job elsewhere, and an error for a real local launch."""
    return spec.dry_run or spec.launcher.name != "local"


def missing_files(spec: RunSpec) -> list[str]:
    """Warnings for the model and data files of a spec that are not on this machine."""
    out: list[str] = []
    model = spec.model
    if model.builtin is None and model.path and model.is_local_path and not Path(model.path).expanduser().is_dir():
        out.append(f"model.path: directory {spec.model.path} is not on this machine ({_where(spec)})")
    if spec.data.builtin is None:
        for key, files in (("data.train_files", spec.data.train_files), ("data.val_files", spec.data.val_files)):
            for name in files or ():
                if not Path(name).expanduser().exists():
                    out.append(f"{key}: {name} is not on this machine ({_where(spec)}); {missing_data_hint(spec)}")
    return out


def _where(spec: RunSpec) -> str:
    if spec.dry_run and spec.launcher.name == "local":
        return "a real local launch would stop here"
    return "checked again where the job runs"


def missing_data_hint(spec: RunSpec) -> str:
    """How to point a data preset at its files: the environment variable its preset reads, data.dir, train_files."""
    import re

    from trainer_platform.paths import conf_dir

    preset = conf_dir() / "data" / f"{spec.data.name}.yaml"
    try:
        env_vars = re.findall(r"oc\.env:(\w+)", preset.read_text())
    except OSError:
        env_vars = []
    ways = [f"export {v}=/path/to/folder" for v in dict.fromkeys(env_vars)]
    if spec.data.dir is not None:
        ways.append("data.dir=/path/to/folder")
    ways.append("data.train_files=[/path/train.parquet]")
    return "point the job at the files: " + ", or ".join(ways)


def check_effective(spec: RunSpec) -> None:
    """Refuse settings the chosen algorithm or data never reads, so no value a user sets is silently ignored."""
    kind, data = spec.algorithm.kind, spec.data
    if kind == "rl" and data.max_length is not None:
        raise SpecError(
            "data.max_length", "RL does not read it", "set data.max_prompt_length and data.max_response_length"
        )
    if kind != "rl":
        for key in ("max_prompt_length", "max_response_length"):
            if getattr(data, key) is not None:
                raise SpecError(f"data.{key}", f"{spec.algorithm.name} does not read it", "set data.max_length")
        if data.reward is not None and scorer_of(data.reward) != VERL:
            raise SpecError("data.reward", f"{spec.algorithm.name} uses no reward function", "remove data.reward")
        if spec.train.val_before_train:
            raise SpecError(
                "train.val_before_train", f"only RL validates before training, not {spec.algorithm.name}", "remove it"
            )
    if data.builtin is None and data.builtin_rows is not None:
        raise SpecError("data.builtin_rows", "only built-in data reads it", "remove it, or pick a tiny_* data preset")
    if data.builtin is not None:
        for key in ("packaged", "fields", "split", "bad_rows"):
            if getattr(data, key) is not None:
                raise SpecError(
                    f"data.{key}", f"data={data.name} is generated, it reads no source", "set data.train_files too"
                )
    if data.builtin is not None and data.dir is not None:
        raise SpecError(
            "data.dir", f"data={data.name} is generated, it reads no folder", "set data.train_files to use your files"
        )
