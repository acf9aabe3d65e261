"""RunSpec validation: every config composes; bad keys, values and combinations give SpecErrors that name the key
and suggest the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer_platform.compose import GROUPS, compose_config, group_options
from trainer_platform.errors import SpecError
from trainer_platform.spec import VERL_ESTIMATORS, VERL_POLICY_LOSSES, RLAlgorithm, RunSpec

KIND_DATA = {"sft": "tiny_sft", "rl": "tiny_math", "dpo": "tiny_pref"}


def spec_of(*overrides: str) -> RunSpec:
    return RunSpec.from_config(compose_config(list(overrides)))


def error_of(*overrides: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        spec_of(*overrides)
    return info.value


@pytest.mark.parametrize("algo", group_options("algorithm"))
def test_every_algorithm_composes_with_its_tiny_data(algo: str) -> None:
    kind = compose_config([f"algorithm={algo}"])["algorithm"]["kind"]
    spec = spec_of(f"algorithm={algo}", f"data={KIND_DATA[kind]}")
    assert spec.algorithm.name == algo


@pytest.mark.parametrize("group", [g for g in GROUPS if g not in ("algorithm", "data", "experiment", "surgery")])
def test_every_group_option_composes(group: str) -> None:
    for option in group_options(group):
        assert spec_of(f"{group}={option}")


@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_every_experiment_composes(experiment: str, gsm8k_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GSM8K_DIR", str(gsm8k_dir))
    assert spec_of(f"+experiment={experiment}")


def test_spec_is_frozen_and_round_trips() -> None:
    spec = spec_of("algorithm=grpo", "data=tiny_math")
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        spec.name = "x"  # type: ignore[misc]
    assert RunSpec.from_config(spec.to_config()) == spec


def test_estimators_match_verl() -> None:
    from verl.trainer.ppo.core_algos import AdvantageEstimator

    assert set(VERL_ESTIMATORS) == {e.value for e in AdvantageEstimator}


def test_policy_losses_match_verl() -> None:
    from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY

    assert set(VERL_POLICY_LOSSES) == set(POLICY_LOSS_REGISTRY)


def test_unknown_policy_loss_is_refused_with_the_closest() -> None:
    err = error_of("algorithm=grpo", "data=tiny_math", "algorithm.loss_mode=gspoo")
    assert err.key == "algorithm.loss_mode" and "did you mean 'gspo'" in err.hint and "vanilla" in err.hint


def test_a_list_item_with_a_space_gets_a_hint_that_keeps_the_list() -> None:
    err = error_of("launcher=ssh", "launcher.setup=[source ~/venv/bin/activate]")
    assert err.key == "launcher.setup" and "\"launcher.setup=['source ~/venv/bin/activate']\"" in err.hint


def test_a_string_where_a_list_is_wanted_is_told_the_list_syntax() -> None:
    err = error_of("logger.backends=wandb")
    assert err.key == "logger.backends" and "logger.backends=[wandb]" in err.hint


def test_a_refused_number_is_told_how_to_write_one() -> None:
    err = error_of("algorithm.lr=abc")
    assert err.key == "algorithm.lr" and "algorithm.lr=1e-5" in err.hint
    err = error_of("train.steps=1.5")
    assert err.key == "train.steps" and "whole number" in err.hint


def test_a_new_key_under_an_empty_block_is_told_to_add_it_with_a_plus_without_echoing_its_value() -> None:
    err = error_of("launcher=ray", "launcher.address=http://head:8265", "launcher.env.WANDB_API_KEY=sekrit12345")
    assert err.key == "launcher.env.WANDB_API_KEY" and "+launcher.env.WANDB_API_KEY=" in err.hint
    assert "sekrit12345" not in str(err)


def test_unknown_group_option_suggests_the_closest() -> None:
    err = error_of("algorithm=grpoo")
    assert err.key == "algorithm=grpoo" and "did you mean 'grpo'" in err.hint and "gspo" in err.hint


def test_misspelt_key_suggests_the_closest() -> None:
    err = error_of("algorithm=grpo", "data=tiny_math", "algorithm.kl_cof=0.1")
    assert err.key == "algorithm.kl_cof" and "did you mean 'kl_coef'" in err.hint


def test_unknown_top_level_key() -> None:
    err = error_of("algoritm.lr=1")
    assert "did you mean 'algorithm'" in err.hint


def test_wrong_type_names_the_key() -> None:
    err = error_of("algorithm.lr=fast")
    assert err.key == "algorithm.lr" and "fast" in err.problem


def test_value_out_of_range() -> None:
    err = error_of("algorithm.warmup_ratio=1.5")
    assert err.key == "algorithm.warmup_ratio"


def test_algorithm_data_mismatch() -> None:
    err = error_of("algorithm=grpo", "data=tiny_sft")
    assert err.key == "data" and "prompts" in err.problem and "tiny_math" in err.hint


def test_dpo_needs_preference_pairs() -> None:
    err = error_of("algorithm=dpo", "data=tiny_math")
    assert "preference" in err.problem and "tiny_pref" in err.hint


def test_group_estimator_needs_a_group() -> None:
    err = error_of("algorithm=grpo", "data=tiny_math", "algorithm.rollout_n=1")
    assert err.key == "algorithm.rollout_n"


def test_missing_model_dir(tmp_path: Path) -> None:
    err = error_of(f"model.path={tmp_path}/nope", "model.builtin=null")
    assert err.key == "model.path" and "does not exist" in err.problem


def test_model_dir_without_config_json(tmp_path: Path) -> None:
    err = error_of(f"model.path={tmp_path}", "model.builtin=null")
    assert "config.json" in err.problem


def test_missing_data_file(tmp_path: Path) -> None:
    err = error_of("algorithm=grpo", "data=gsm8k", f"data.dir={tmp_path}")
    assert err.key == "data.train_files" and str(tmp_path / "train.parquet") in err.problem


def test_data_file_lacking_fields(tmp_path: Path) -> None:
    import pandas as pd

    pd.DataFrame({"text": ["1+1?"], "label": ["2"]}).to_parquet(tmp_path / "train.parquet")
    pd.DataFrame({"text": ["1+1?"], "label": ["2"]}).to_parquet(tmp_path / "test.parquet")
    err = error_of("algorithm=grpo", "data=gsm8k", f"data.dir={tmp_path}")
    assert err.key == f"{tmp_path / 'train.parquet'} row 1" and "'question' is missing" in err.problem


def test_gsm8k_answer_without_a_final_number_names_the_row(tmp_path: Path) -> None:
    import pandas as pd

    pd.DataFrame({"question": ["1+1?"], "answer": ["2"]}).to_parquet(tmp_path / "train.parquet")
    err = error_of("algorithm=grpo", "data=gsm8k", f"data.dir={tmp_path}")
    assert err.key.endswith("train.parquet row 1") and "'answer'" in err.problem and "####" in err.problem


def test_gsm8k_files_are_accepted(gsm8k_dir: Path) -> None:
    spec = spec_of("algorithm=grpo", "data=gsm8k", f"data.dir={gsm8k_dir}")
    assert isinstance(spec.algorithm, RLAlgorithm)
    assert spec.data.train_files == (f"{gsm8k_dir}/train.parquet",)


def test_unknown_logger_backend() -> None:
    err = error_of("logger.backends=[console,tensorbord]")
    assert err.key.startswith("logger.backends")
