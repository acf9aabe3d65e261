"""Format and structure scorers (verl/tp_reward_format.py) and composites (verl/tp_rewards.py): tables of
(response, options, expected score)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from trainer_platform.rewards import library


@pytest.fixture(scope="module")
def score() -> Callable[..., Any]:
    return library().compute_score


THINK = "<think>3 + 5 = 8</think><answer>8</answer>"


@pytest.mark.parametrize(
    ("scorer", "response", "options", "expected"),
    [
        ("regex", "Final: 42", {"pattern": r"Final: \d+"}, 1.0),
        ("regex", "final: 42", {"pattern": r"Final: \d+"}, 0.0),
        ("regex", "final: 42", {"pattern": r"Final: \d+", "flags": "i"}, 1.0),
        ("regex", "  Final: 42 \n", {"pattern": r"Final: \d+", "mode": "fullmatch"}, 1.0),
        ("regex", "so Final: 42", {"pattern": r"Final: \d+", "mode": "fullmatch"}, 0.0),
        ("regex", "a\nb", {"pattern": "a.b", "flags": "s"}, 1.0),
        ("regex", "As an AI model", {"pattern": "as an ai", "flags": "i", "negate": True}, 0.0),
        ("regex", "", {"pattern": ".+"}, 0.0),
        ("tags", THINK, {}, 1.0),
        ("tags", "<think>x</think> then <answer>8</answer>", {}, 1.0),
        ("tags", "<answer>8</answer><think>x</think>", {}, 0.0),  # wrong order
        ("tags", "<answer>8</answer><think>x</think>", {"in_order": False}, 1.0),
        ("tags", "<think>x</think>", {}, 0.0),  # a missing tag
        ("tags", "<think>x</think>", {"partial": True}, 0.25),
        ("tags", "<think></think><answer>8</answer>", {}, 0.0),  # empty content
        ("tags", "<think>a</think><think>b</think><answer>8</answer>", {}, 0.0),  # repeated
        ("tags", "<think>a<answer>8</answer>", {}, 0.0),  # unclosed
        ("tags", "hi " + THINK, {"only_tags": True}, 0.0),
        ("tags", " " + THINK + "\n", {"only_tags": True}, 1.0),
        ("tags", "<reasoning>x</reasoning>", {"tags": ["reasoning"]}, 1.0),
        ("tags", "", {}, 0.0),
        ("json", '{"a": 1}', {}, 1.0),
        ("json", 'Here: ```json\n{"a": 1}\n```', {}, 1.0),
        ("json", 'Sure! {"a": 1} hope that helps', {}, 1.0),
        ("json", 'Sure! {"a": 1} hope that helps', {"extract": False}, 0.0),
        ("json", '{"a": 1,}', {}, 0.0),  # trailing comma: invalid
        ("json", "[1, 2]", {}, 1.0),
        ("json", "[1, 2]", {"object_only": True}, 0.0),
        ("json", '{"name": "x", "age": 3}', {"required_keys": ["name", "age"]}, 1.0),
        ("json", '{"name": "x"}', {"required_keys": ["name", "age"]}, 0.0),
        ("json", "[" * 100_000, {}, 0.0),  # deep nesting: no crash
        ("json", "", {}, 0.0),
        ("length", "one two three", {"max_len": 3}, 1.0),
        ("length", "one two three four five", {"max_len": 3, "buffer": 4}, 0.5),
        ("length", "w " * 100, {"max_len": 3, "buffer": 4}, 0.0),
        ("length", "abcdef", {"unit": "chars", "max_len": 4, "buffer": 4}, 0.5),
        ("length", "one", {"min_len": 4}, 0.25),
        ("length", "", {"min_len": 4}, 0.0),
        ("length", "one two", {"max_len": 1, "buffer": 0}, 0.0),
    ],
)
def test_form_scorers(
    score: Callable[..., Any], scorer: str, response: str, options: dict[str, Any], expected: float
) -> None:
    assert score("any", response, "", None, scorer=scorer, options=options) == pytest.approx(expected)


def test_composite_weighted_sum_with_metrics(score: Callable[..., Any]) -> None:
    terms = [
        {"scorer": "math", "weight": 1.0, "options": {}},
        {"scorer": "tags", "weight": 0.2, "options": {}},
        {"scorer": "length", "weight": -0.5, "options": {"max_len": 2, "buffer": 2}, "label": "too_long"},
        {"scorer": "tags", "weight": 0.1, "options": {"tags": ["answer"]}},
    ]
    out = score("x", THINK + " \\boxed{8}", "8", None, scorer="composite", terms=terms)
    # math 1, tags 1, length: 5 words over a max of 2 with buffer 2 -> 0, answer tag 1
    assert out == {
        "score": pytest.approx(1.3),
        "acc": pytest.approx(1.3),
        "reward_math": 1.0,
        "reward_tags": 1.0,
        "reward_too_long": 0.0,
        "reward_tags_2": 1.0,
    }
    wrong = score("x", "<think>x</think><answer>7</answer>", "8", None, scorer="composite", terms=terms)
    assert wrong["reward_math"] == 0.0 and wrong["score"] == pytest.approx(0.2 - 0.5 + 0.1)


def test_composite_calls_a_user_function_with_its_options(score: Callable[..., Any], tmp_path: Any) -> None:
    user = tmp_path / "my_reward.py"
    user.write_text(
        "def brevity(data_source, solution_str, ground_truth, extra_info=None, limit=10):\n"
        "    return {'score': 1.0 if len(solution_str) <= limit else 0.0, 'chars': len(solution_str)}\n"
    )
    terms = [{"scorer": "custom", "path": str(user), "name": "brevity", "weight": 2.0, "options": {"limit": 5}}]
    assert score("x", "short", "", None, scorer="composite", terms=terms)["score"] == 2.0
    assert score("x", "too long", "", None, scorer="composite", terms=terms)["score"] == 0.0


@pytest.mark.parametrize(
    ("scorer", "options", "problem_key"),
    [
        ("math", {"format_scor": 0.1}, "format_scor"),
        ("math", {"rel_tol": -1.0}, "rel_tol"),
        ("math", {"rel_tol": "small"}, "rel_tol"),
        ("math", {"strict": "yes"}, "strict"),
        ("math", {"several_answers": "first"}, "several_answers"),
        ("math", {"format_score": float("nan")}, "format_score"),
        ("regex", {}, "pattern"),
        ("regex", {"pattern": "(unclosed"}, "pattern"),
        ("regex", {"pattern": "a", "flags": "q"}, "flags"),
        ("tags", {"tags": "think"}, "tags"),
        ("tags", {"tags": ["think", 3]}, "tags"),
        ("length", {"max_len": 0}, "max_len"),
        ("length", {"max_len": 2.5}, "max_len"),
        ("length", {"min_len": 10, "max_len": 5}, "min_len"),
        ("length", {"unit": "tokens"}, "unit"),
        ("json", {"required_keys": "a"}, "required_keys"),
    ],
)
def test_option_problems(scorer: str, options: dict[str, Any], problem_key: str) -> None:
    problems = library().option_problems(scorer, options)
    assert problems and problems[0][0] == problem_key, problems


def test_default_options_have_no_problems() -> None:
    lib = library()
    for name, scorer in lib.SCORERS.items():
        defaults = {k: o.default for k, o in scorer.options.items() if o.default is not lib.REQUIRED}
        needed = {"pattern": "x"} if name == "regex" else {}
        assert lib.option_problems(name, {**defaults, **needed}) == [], name
