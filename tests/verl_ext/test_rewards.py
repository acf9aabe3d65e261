"""verl/tp_rewards.py: numeric answer extraction and scoring, loaded the way verl loads it (by file path)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from trainer_platform.paths import verl_ext_dir

REWARDS_PATH = verl_ext_dir() / "tp_rewards.py"


@pytest.fixture(scope="module")
def rewards() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tp_rewards_under_test", REWARDS_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def score(rewards: ModuleType) -> Callable[..., float]:
    return rewards.compute_score


@pytest.mark.parametrize(
    ("response", "truth", "expected"),
    [
        ("3 + 5 = 8.\n#### 8", "8", 1.0),
        ("#### 8", 8, 1.0),
        ("3 + 5 = 9.\n#### 9", "8", 0.0),
        ("#### 1,234", "1234", 1.0),
        ("#### $12.50", "12.5", 1.0),
        ("#### -7", "-7", 1.0),
        ("#### 8.0", "8", 1.0),
        ("first #### 3 then #### 8", "8", 1.0),
        ("the answer is 8", "8", 1.0),  # fallback: last number
        ("5 then 8 then 9", "8", 0.0),
        ("no numbers here", "8", 0.0),
        ("####", "8", 0.0),
        ("#### 8", "not a number", 0.0),
        ("", "0", 0.0),
    ],
)
def test_compute_score(score: Callable[..., float], response: str, truth: str, expected: float) -> None:
    assert score("trainer_platform/tiny_math", response, truth) == expected


def test_verl_signature(score: Callable[..., float]) -> None:
    assert score(data_source="x", solution_str="#### 8", ground_truth="8", extra_info={"split": "val"}) == 1.0
    assert score("x", "#### 8", "8", None, unexpected_kwarg=1) == 1.0


def test_format_score_and_strict(score: Callable[..., float]) -> None:
    assert score("x", "#### 9", "8", format_score=0.1) == 0.1
    assert score("x", "it is 9", "8", format_score=0.1) == 0.0
    assert score("x", "it is 8", "8", strict=True) == 0.0
    assert score("x", "#### 8", "8", strict=True) == 1.0


def test_extract_answer(rewards: ModuleType) -> None:
    assert rewards.extract_answer("a 1 b #### 42") == (42.0, True)
    assert rewards.extract_answer("a 1 b 42.") == (42.0, False)
    assert rewards.extract_answer("nothing") == (None, False)


def test_no_torch_import() -> None:
    code = f"import runpy, sys; runpy.run_path({str(REWARDS_PATH)!r}); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_verl_folder_has_no_init() -> None:
    assert not (verl_ext_dir() / "__init__.py").exists()
    assert Path(REWARDS_PATH).is_file()
