"""Rule-based rewards for numeric answers, loaded by verl via `reward.custom_reward_function.{path,name}`.

`compute_score` follows verl's custom reward signature. The answer is the number after the last ``####`` in the
response (GSM8K style); when there is no ``####`` it falls back to the last number in the text. It is compared
numerically with the ground truth (``"1,234"``, ``"8.0"`` and ``"8"`` all match ``8``).

Scores: 1.0 for a correct answer; ``format_score`` (default 0.0) for a wrong answer given in the ``#### <n>`` format;
0.0 otherwise. A correct answer found only by the fallback still scores 1.0 unless ``strict=True``, which makes it
score 0.0 (format required). Both are set from the verl config with
``reward.custom_reward_function.reward_kwargs``. Pure Python: this module is imported inside verl's reward
workers.
"""

from __future__ import annotations

import math
import re
from typing import Any

_NUMBER = r"-?\$?\s*[0-9][0-9,]*(?:\.[0-9]+)?|-?\.[0-9]+"
_AFTER_MARKER = re.compile(r"####\s*(" + _NUMBER + ")")
_ANY_NUMBER = re.compile(_NUMBER)
_TOLERANCE = 1e-6


def _to_float(text: str) -> float | None:
    cleaned = text.replace(",", "").replace("$", "").replace(" ", "").rstrip(".")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def extract_answer(solution_str: str) -> tuple[float | None, bool]:
    """The numeric answer in a response and whether it came from the ``####`` format."""
    marker = solution_str.rfind("####")
    if marker != -1:
        match = _AFTER_MARKER.match(solution_str, marker)
        if match:
            return _to_float(match.group(1)), True
    numbers = _ANY_NUMBER.findall(solution_str)
    if numbers:
        return _to_float(numbers[-1]), False
    return None, False


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str | int | float,
    extra_info: dict[str, Any] | None = None,
    *,
    format_score: float = 0.0,
    strict: bool = False,
    **kwargs: Any,
) -> float:
    """1.0 if the response's numeric answer equals `ground_truth`, else `format_score` / 0.0 (see module doc)."""
    answer, formatted = extract_answer(solution_str)
    expected = _to_float(str(ground_truth))
    if answer is None or expected is None:
        return 0.0
    if strict and not formatted:
        return 0.0
    if math.isclose(answer, expected, rel_tol=_TOLERANCE, abs_tol=_TOLERANCE):
        return 1.0
    return format_score if formatted else 0.0
