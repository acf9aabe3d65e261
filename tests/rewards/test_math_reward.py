"""The math scorer (verl/tp_reward_math.py through tp_rewards.compute_score): tables of (response, ground truth,
expected score), adversarial rows included."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from trainer_platform.rewards import library


@pytest.fixture(scope="module")
def score() -> Callable[..., Any]:
    return library().compute_score


CORRECT = [
    # boxed, nested braces, LaTeX fractions
    ("so the answer is $\\boxed{72}$.", "72"),
    ("\\boxed{\\frac{1}{2}}", "0.5"),
    ("\\boxed{\\dfrac{3}{4}}", "\\frac34"),
    ("\\boxed{\\tfrac{3}{4}}", "3/4"),
    ("\\boxed{-\\frac{1}{2}}", "-0.5"),
    ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\dfrac{\\sqrt3}{2}"),
    ("\\boxed{1\\frac{1}{2}}", "3/2"),
    ("\\boxed{{8}}", "8"),
    ("\\boxed 8", "8"),
    ("\\fbox{8}", "8"),
    ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),
    ("\\boxed{(1, 2)}", "(1,2)"),
    ("\\boxed{x = -2}", "-2"),
    ("\\boxed{90^\\circ}", "90"),
    ("\\boxed{90°}", "90"),
    # GSM8K marker, commas, currency, units, trailing .0
    ("3 + 5 = 8.\n#### 8", "8"),
    ("#### 1,234", "1234"),
    ("#### $12.50", "12.5"),
    ("#### 8.0", "8"),
    ("#### 8.", "8"),
    ("#### 18 dollars", "18"),
    ("\\boxed{5\\text{ cm}}", "5"),
    ("\\boxed{\\text{18 dollars}}", "18"),
    ("#### 1 000 000", "1000000"),
    # percentages: 50% is 50 and 0.5
    ("\\boxed{50\\%}", "50"),
    ("\\boxed{50\\%}", "0.5"),
    ("#### 0.25", "25%"),
    # scientific notation, powers of ten
    ("\\boxed{2.5\\times10^{3}}", "2500"),
    ("\\boxed{1.5e3}", "1500"),
    ("\\boxed{10^{6}}", "1000000"),
    # phrase and last-number fallbacks
    ("The answer is 8.", "8"),
    ("Answer: 3/4", "0.75"),
    ("She pays $1,200.50 in total", "1200.5"),
    ("5 then 9 then 8", "8"),
    # unicode digits and minus signs (Arabic-Indic, full-width, U+2212)
    ("#### ٨", "8"),
    ("#### ８", "8"),
    ("\\boxed{−2}", "-2"),
    ("#### ١٢٣", "123"),
    # numeric tolerance for non-integers only
    ("\\boxed{0.33333}", "1/3"),
    ("\\boxed{3.14159}", "3.1416"),
    # ground truth as a full GSM8K solution, a boxed string, a number, a list of acceptable answers
    ("#### 72", "48 + 24 = 72 clips.\n#### 72"),
    ("#### 72", "\\boxed{72}"),
    ("#### 72", 72),
    ("#### 0.5", 0.5),
    ("#### 6", ["6", "six"]),
    ("\\boxed{six}", ["6", "six"]),
    # huge numbers compared exactly
    ("#### 123456789012345678901234567890", "123456789012345678901234567890"),
    ("several equal boxed: \\boxed{8} ... so \\boxed{8.0}", "8"),
    # a number too long to read as one still matches digit for digit, as text
    ("the answer is " + "1" * 5000, "1" * 5000),
]

WRONG = [
    ("\\boxed{7}", "8"),
    ("#### 9", "8"),
    ("5 then 8 then 9", "8"),  # the last number counts, not any number
    ("no numbers here", "8"),
    ("####", "8"),
    ("#### 8", "not a number"),
    ("", "0"),  # empty response
    ("   ", "0"),
    (None, "0"),
    ("#### 8", ""),  # empty ground truth
    ("#### 8", None),
    # hedging: several different boxed / #### answers score nothing
    ("\\boxed{3} or maybe \\boxed{8}", "8"),
    ("first #### 3 then #### 8", "8"),
    # huge numbers: integers must be equal exactly (no float rounding), adversarial exponents are no answer
    ("#### 123456789012345678901234567890", "123456789012345678901234567891"),
    ("#### 1e999999999", "1"),
    ("\\boxed{10^{99999999}}", "1"),
    ("#### " + "9" * 5000, "9"),
    # near misses that a loose tolerance or sloppy parsing would accept
    ("\\boxed{1000001}", "1000000"),
    ("\\boxed{0.333}", "1/3"),
    ("\\boxed{3x}", "3"),
    ("\\boxed{\\frac{1}{0}}", "0"),
    ("\\boxed{\\frac{1}{2}", "0.5"),  # unclosed brace (truncated): no boxed answer, last number 2
    ("\\boxed{-8}", "8"),
    ("\\boxed{8}", "-8"),
    ("\\boxed{\\sqrt{2}}", "\\sqrt{3}"),
]


@pytest.mark.parametrize(("response", "truth"), CORRECT)
def test_correct_answers_score_one(score: Callable[..., Any], response: str, truth: Any) -> None:
    assert score("openai/gsm8k", response, truth) == 1.0


@pytest.mark.parametrize(("response", "truth"), WRONG)
def test_wrong_answers_score_zero(score: Callable[..., Any], response: str, truth: Any) -> None:
    assert score("openai/gsm8k", response, truth) == 0.0


ECHO_PROMPT = "Q: Tom has 3 apples and buys 5. How many apples? A: 3 + 5 = 8.\n#### 8\nQ: Ann has 2 pens."


@pytest.mark.parametrize(
    ("response", "extra_info", "expected"),
    [
        # the response only repeats the few-shot prompt: the answer in it is not the model's
        (ECHO_PROMPT, {"question": ECHO_PROMPT}, 0.0),
        (ECHO_PROMPT + " She buys 6 more.", {"question": ECHO_PROMPT}, 0.0),
        # an own answer after the echo still counts
        (ECHO_PROMPT + "\nShe has 2 + 6 = 8.\n#### 8", {"question": ECHO_PROMPT}, 1.0),
        # chat-format prompts in extra_info
        (ECHO_PROMPT, {"prompt": [{"role": "user", "content": ECHO_PROMPT}]}, 0.0),
        # without the prompt in extra_info the echo cannot be told apart
        (ECHO_PROMPT, {}, 1.0),
    ],
)
def test_answer_echoed_from_the_prompt(
    score: Callable[..., Any], response: str, extra_info: Any, expected: float
) -> None:
    assert score("openai/gsm8k", response, "8", extra_info) == expected


def test_echo_removal_can_be_turned_off(score: Callable[..., Any]) -> None:
    opts = {"ignore_prompt_echo": False}
    assert score("x", ECHO_PROMPT, "8", {"question": ECHO_PROMPT}, options=opts) == 1.0


@pytest.mark.parametrize(
    ("response", "options", "expected"),
    [
        ("#### 9", {"format_score": 0.1}, 0.1),  # wrong, but in the asked-for form
        ("\\boxed{9}", {"format_score": 0.1}, 0.1),
        ("it is 9", {"format_score": 0.1}, 0.0),  # wrong and unformatted
        ("it is 8", {"strict": True}, 0.0),  # right, but only by the last-number fallback
        ("#### 8", {"strict": True}, 1.0),
        ("\\boxed{3} or \\boxed{8}", {"several_answers": "last"}, 1.0),
        ("\\boxed{0.333}", {"rel_tol": 0.01}, 1.0),
        ("\\boxed{1000001}", {"rel_tol": 0.01}, 0.0),  # integers stay exact
    ],
)
def test_math_options(score: Callable[..., Any], response: str, options: dict[str, Any], expected: float) -> None:
    truth = "1/3" if "0.333" in response else ("1000000" if "1000001" in response else "8")
    assert score("x", response, truth, options=options) == expected


def test_option_keywords_and_unknown_verl_keywords(score: Callable[..., Any]) -> None:
    # verl merges reward_kwargs into the call and may add keywords of its own (reward_router_address ...)
    assert score("x", "#### 9", "8", format_score=0.1) == 0.1
    assert (
        score(data_source="x", solution_str="#### 8", ground_truth="8", extra_info=None, reward_router_address=None)
        == 1.0
    )


def test_numpy_ground_truth_from_parquet(score: Callable[..., Any]) -> None:
    import numpy as np

    assert score("x", "#### 8", np.int64(8)) == 1.0
    assert score("x", "#### 8", np.array(["7", "8"], dtype=object)) == 1.0
    assert score("x", "#### 8", np.float64("nan")) == 0.0


def test_huge_inputs_stay_fast(score: Callable[..., Any]) -> None:
    import time

    start = time.perf_counter()
    for response in ("9" * 200_000, "\\boxed{" * 20_000, "#### 1e" + "9" * 10_000, "1/" * 50_000 + "2"):
        assert score("x", response, "8") == 0.0
    assert time.perf_counter() - start < 5.0
