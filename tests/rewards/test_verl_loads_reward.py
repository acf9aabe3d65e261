"""verl itself loads and calls the selected reward: the job's overrides are composed on verl's own config, verl's
loader (`get_custom_reward_fn`, `load_reward_manager`) imports the file by path in a fresh process state, and
verl's naive and DAPO reward managers score real token ids decoded by the tiny model's tokenizer. No mocks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trainer_platform.batch import batch_math
from trainer_platform.compose import compose_config
from trainer_platform.paths import verl_ext_dir
from trainer_platform.planner import plan
from trainer_platform.spec import RunSpec
from trainer_platform.verl_job import JobInputs, build_job
from trainer_platform.verl_schema import CONFIG_NAMES, compose_verl_config, job_overrides, verl_config_dir

USER = (
    "def shouting(data_source, solution_str, ground_truth, extra_info=None, limit=0):\n"
    "    return float(sum(c.isupper() for c in solution_str) > limit)\n"
)
# a pattern with backslashes, braces, quotes and a dollar: it must reach verl unchanged through Hydra's grammar
PATTERN = r"\\boxed\{[^}]+\}\s*$"


def _verl_config(overrides: list[str], model_dir: Path) -> Any:
    spec = RunSpec.from_config(compose_config(["data=tiny_math", "compute=cpu", *overrides]))
    the_plan = plan(spec, engines=())
    inputs = JobInputs(
        model_path=str(model_dir),
        train_files=("/data/train.parquet",),
        val_files=(),
        run_dir="/runs/reward",
        train_rows=16,
    )
    job = build_job(spec, the_plan, batch_math(spec, the_plan), inputs)
    job = job.resolve({"TP_RUN_DIR": "/runs/reward", "TP_VERL_EXT": str(verl_ext_dir())})
    return compose_verl_config(verl_config_dir(), CONFIG_NAMES[job.entry_point], job_overrides(job))


@pytest.fixture(scope="module")
def user_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("user_reward") / "mine.py"
    path.write_text(USER)
    return path


def _composite(user_file: Path) -> list[str]:
    return [
        "data.reward.scorer=composite",
        "data.reward.terms=["
        "{scorer:math,weight:1.0,options:{format_score:0.1}},"
        f"{{scorer:regex,weight:0.5,label:boxed_last,options:{{pattern:'{PATTERN}',flags:s}}}},"
        f"{{scorer:custom,path:'{user_file}',name:shouting,weight:-0.25,options:{{limit:3}}}}]",
    ]


def test_verl_loader_calls_the_composite(tiny_model_dir: Path, user_file: Path) -> None:
    from verl.trainer.ppo.reward import get_custom_reward_fn

    config = _verl_config(["algorithm=grpo", *_composite(user_file)], tiny_model_dir)
    fn_cfg = config.reward.custom_reward_function
    assert fn_cfg.path == str(verl_ext_dir() / "tp_rewards.py") and fn_cfg.name == "compute_score"
    assert fn_cfg.reward_kwargs.terms[1].options.pattern == PATTERN
    fn = get_custom_reward_fn(config)
    assert fn is not None
    out = fn(data_source="tiny", solution_str="so \\boxed{8}", ground_truth="8", extra_info={})
    assert out == {"score": 1.5, "acc": 1.5, "reward_math": 1.0, "reward_boxed_last": 1.0, "reward_custom": 0.0}
    out = fn(data_source="tiny", solution_str="WRONG ANSWER \\boxed{9} hm", ground_truth="8", extra_info={})
    assert out["score"] == pytest.approx(0.1 - 0.25)


def test_verl_loader_calls_a_user_function_with_its_options(tiny_model_dir: Path, user_file: Path) -> None:
    from verl.trainer.ppo.reward import get_custom_reward_fn

    overrides = [
        "data.reward.scorer=custom",
        f"data.reward.path={user_file}",
        "data.reward.name=shouting",
        "+data.reward.options.limit=1",
    ]
    config = _verl_config(["algorithm=grpo", *overrides], tiny_model_dir)
    assert config.reward.custom_reward_function.path == str(user_file)
    fn = get_custom_reward_fn(config)
    assert fn is not None
    assert fn(data_source="x", solution_str="AB", ground_truth="", extra_info=None) == 1.0
    assert fn(data_source="x", solution_str="Ab", ground_truth="", extra_info=None) == 0.0


def test_verl_scorer_leaves_verl_its_own(tiny_model_dir: Path) -> None:
    config = _verl_config(["algorithm=grpo", "data.reward.scorer=verl"], tiny_model_dir)
    assert config.reward.custom_reward_function.path is None


def _item(tokenizer: Any, prompt: str, response: str, truth: str, extra: dict[str, Any]) -> Any:
    import numpy as np
    import torch

    from verl import DataProto

    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    r = tokenizer(response, add_special_tokens=False)["input_ids"]
    return DataProto.from_dict(
        tensors={
            "prompts": torch.tensor([p]),
            "responses": torch.tensor([r]),
            "attention_mask": torch.ones(1, len(p) + len(r), dtype=torch.long),
        },
        non_tensors={
            "data_source": np.array(["tiny"], dtype=object),
            "reward_model": np.array([{"ground_truth": truth, "style": "rule"}], dtype=object),
            "extra_info": np.array([extra], dtype=object),
        },
    )


@pytest.mark.parametrize("algorithm", ["grpo", "dapo"])
def test_verl_reward_managers_score_decoded_responses(algorithm: str, tiny_model_dir: Path, user_file: Path) -> None:
    from transformers import AutoTokenizer
    from verl.trainer.ppo.reward import load_reward_manager

    config = _verl_config([f"algorithm={algorithm}", *_composite(user_file)], tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    manager = load_reward_manager(config, tokenizer)
    assert type(manager).__name__ == ("DAPORewardManager" if algorithm == "dapo" else "NaiveRewardManager")
    right = _item(tokenizer, "3 + 5 = ?", "3 + 5 = 8 #### 8", "8", {"question": "3 + 5 = ?"})
    result = manager.loop.run_until_complete(manager.run_single(right))
    assert result["reward_extra_info"]["reward_math"] == 1.0
    assert result["reward_extra_info"]["acc"] == 1.0  # DAPO's group filter reads acc by default
    expected = 1.0 + result["reward_extra_info"].get("overlong_reward", 0.0)
    assert result["reward_score"] == pytest.approx(expected)


def test_reward_library_imports_no_torch() -> None:
    code = (
        "import importlib.util, sys\n"
        f"s = importlib.util.spec_from_file_location('any_name', {str(verl_ext_dir() / 'tp_rewards.py')!r})\n"
        "m = importlib.util.module_from_spec(s); s.loader.exec_module(m)\n"
        "assert m.compute_score('x', '#### 8', '8') == 1.0\n"
        "assert 'torch' not in sys.modules and 'verl' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd="/")
