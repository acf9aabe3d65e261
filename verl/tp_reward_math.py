"""Math answers: extraction from a response, normalisation, and exact / numeric-tolerance comparison.

Pure Python (stdlib only): imported inside verl's reward workers through `tp_rewards.py`.

Extraction, most explicit form first: ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces), then GSM8K's ``#### N``,
then an "answer is N" / "Answer: N" phrase, then (unless ``strict``) the last number in the text. Text that
repeats the prompt (``extra_info["question"]`` or ``extra_info["prompt"]``, as verl's data preprocessors write
them) is removed first, so an answer copied from a few-shot prompt does not count.

Values are compared exactly as fractions (``Fraction``): integers must be equal, non-integers may differ by
``rel_tol`` relative to the larger. Answers that are not numbers (``\\sqrt{3}``, ``(1,2)``, ``x+1``) are compared
as normalised LaTeX strings. Numbers are read through commas as thousands separators, currency signs, units
(``18 dollars``, ``5\\text{ cm}``), percentages (``50%`` equals ``50`` and ``0.5``), ``\\frac``/``\\dfrac``/``a/b``,
mixed numbers, scientific notation (``1.5e3``, ``1.5\\times10^{3}``), unicode digits and minus signs. Numbers with
more than `MAX_DIGITS` digits or exponents beyond `MAX_EXPONENT` are refused (read as no answer): expanding
``1e999999999`` exactly would stall the worker.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any

MAX_DIGITS = 300
MAX_EXPONENT = 400
_ECHO_MIN_CHARS = 8
# longer answers are never read as numbers (they are still compared as text)
_MAX_NUMBER_CHARS = 4 * MAX_DIGITS

_BOX = re.compile(r"\\(?:boxed|fbox)\b")
_TOKEN = re.compile(r"[^\s$]+")
_MARKER = re.compile(r"####[ \t]*([^\n]*)")
_PHRASE = re.compile(r"(?i)\banswer\s*(?:is|:|=)\s*:?\s*([^\n]+)")
_NUM = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+"
_LAST_NUMBER = re.compile(r"(?<![\w.])(?:" + _NUM + r")(?:\s*/\s*\d+)?")
_DECIMAL = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_FRAC = re.compile(r"\\frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}|\\frac\s*(\d)\s*(\d)")
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_UNIT_TAIL = re.compile(r"^(.*?\d\.?)\s*([a-zA-Z][a-zA-Z .²³/^]*)$")
_TIMES_TEN = re.compile(r"^(.+?)\s*(?:\\times|\\cdot|\*|x|×)\s*10\s*\^\s*\{?\s*([-+]?\d+)\s*\}?$")
_POWER_TEN = re.compile(r"^10\s*\^\s*\{?\s*([-+]?\d+)\s*\}?$")
_MIXED = re.compile(r"^([-+]?)(\d+)\s+(\d+)\s*/\s*(\d+)$")
_ASSIGN = re.compile(r"^[a-zA-Z]\w*\s*(?::=|=)\s*(?=\S)")
_SPACES = {"\\!": "", "\\,": "", "\\;": "", "\\:": "", "\\ ": " ", "~": " ", "\\quad": " ", "\\qquad": " "}
_MINUS = dict.fromkeys(map(ord, "\u2212\u2012\u2013\u2014\ufe63\uff0d"), "-")


def _unicode_digits(text: str) -> str:
    """Unicode digits of any script (Arabic-Indic, Devanagari, full-width ...) as ASCII digits, minus signs as '-'."""
    text = unicodedata.normalize("NFKC", text).translate(_MINUS)
    if text.isascii():
        return text
    return "".join(
        str(unicodedata.decimal(c)) if not c.isascii() and unicodedata.decimal(c, None) is not None else c for c in text
    )


def _brace_pairs(text: str) -> dict[int, int]:
    """Index of each '{' -> index of its matching '}' in one pass ('\\{' and '\\}' are literal braces); braces
    that never close are left out (a truncated response)."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs


def _braced(text: str, start: int) -> tuple[str, int] | None:
    """The contents of the brace group opening at text[start] == '{' (nested groups kept), and the index after it;
    None when the group never closes."""
    end = _brace_pairs(text).get(start)
    return None if end is None else (text[start + 1 : end], end + 1)


def boxed_answers(text: str) -> list[str]:
    """Every ``\\boxed{...}`` / ``\\fbox{...}`` content in order (also ``\\boxed 5``); unclosed ones are skipped.
    Linear in the text: adversarial responses with thousands of unclosed boxes stay cheap."""
    out: list[str] = []
    pairs: dict[int, int] | None = None
    for match in _BOX.finditer(text):
        i = match.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == "{":
            pairs = _brace_pairs(text) if pairs is None else pairs
            if i in pairs:
                out.append(text[i + 1 : pairs[i]])
        elif i > match.end():
            token = _TOKEN.match(text, i)
            if token:
                out.append(token.group(0))
    return out


def _strip_echo(response: str, extra_info: Any) -> str:
    """The response without verbatim copies of the prompt (question text from extra_info, as verl's GSM8K/MATH
    preprocessors record it; chat prompts contribute their message contents)."""
    if not isinstance(extra_info, Mapping):
        return response
    texts: list[str] = []
    for key in ("question", "prompt", "problem"):
        value = extra_info.get(key)
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, Iterable) and not isinstance(value, bytes | Mapping):
            texts += [m.get("content", "") for m in value if isinstance(m, Mapping)]
    for text in sorted((t.strip() for t in texts), key=len, reverse=True):
        if len(text) >= _ECHO_MIN_CHARS:
            response = response.replace(text, " ")
    return response


def extract_answers(response: str, *, strict: bool = False) -> tuple[list[str], str | None]:
    """The candidate final answers of a response and where they came from: boxed | marker | phrase | last_number
    (None: no answer). Boxed and marker forms return every occurrence, so a caller can spot hedging."""
    text = _unicode_digits(response)
    boxed = boxed_answers(text)
    if boxed:
        return boxed, "boxed"
    marked = [m.strip() for m in _MARKER.findall(text) if m.strip()]
    if marked:
        return marked, "marker"
    phrases = [m.strip().rstrip(".") for m in _PHRASE.findall(text)]
    phrases = [p for p in phrases if p]
    if phrases:
        return phrases[-1:], "phrase"
    if strict:
        return [], None
    numbers = _LAST_NUMBER.findall(text)
    return (numbers[-1:], "last_number") if numbers else ([], None)


def normalize(answer: str) -> str:
    """A canonical string form of an answer: LaTeX wrappers, spacing commands, degree signs, ``\\dfrac``, surrounding
    ``$``, a leading ``x =`` and a trailing period removed."""
    s = _unicode_digits(str(answer)).strip()
    whole = boxed_answers(s)
    if len(whole) == 1 and s.startswith(("\\boxed", "\\fbox")) and s.endswith("}"):
        s = whole[0]
    for wrap in (("\\(", "\\)"), ("\\[", "\\]"), ("$", "$")):
        while s.startswith(wrap[0]) and s.endswith(wrap[1]) and len(s) >= len(wrap[0]) + len(wrap[1]):
            s = s[len(wrap[0]) : len(s) - len(wrap[1])].strip()
    for old, new in _SPACES.items():
        s = s.replace(old, new)
    for _ in range(3):
        s = _TEXT_WRAP.sub(r"\1", s)
    s = s.replace("\\left", "").replace("\\right", "").replace("\\displaystyle", "")
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree", "", s)
    s = s.replace("\\%", "%").replace("\\$", "$").replace("{,}", ",")
    s = re.sub(r"\\sqrt\s*(\w)", r"\\sqrt{\1}", s)
    s = _ASSIGN.sub("", s)
    s = re.sub(r"\s+", " ", s).strip().rstrip(".").strip()
    return s


def _decimal(text: str) -> Fraction | None:
    digits = sum(c.isdigit() for c in text)
    if not _DECIMAL.fullmatch(text) or digits > MAX_DIGITS:
        return None
    exponent = re.search(r"[eE]([-+]?\d+)$", text)
    if exponent and abs(int(exponent.group(1))) > MAX_EXPONENT:
        return None
    return Fraction(text)


def _scalar(s: str) -> Fraction | None:
    """A plain number, fraction, mixed number or power of ten (no units, no percent)."""
    s = s.replace(" ", "") if re.fullmatch(r"[-+]?\d{1,3}(?: \d{3})+(?:\.\d+)?", s) else s
    if re.fullmatch(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?", s):
        s = s.replace(",", "")
    s = s.strip()
    while s.startswith("{") and _braced(s, 0) == (s[1:-1], len(s)):
        s = s[1:-1].strip()
    frac = _FRAC.fullmatch(s.lstrip("-+"))
    if frac:
        num, den = (frac.group(1), frac.group(2)) if frac.group(1) is not None else (frac.group(3), frac.group(4))
        value = _ratio(_scalar(num.strip()), _scalar(den.strip()))
        return -value if value is not None and s.startswith("-") else value
    mixed_latex = re.fullmatch(r"([-+]?)(\d+)\s*(\\frac.*)", s)
    if mixed_latex:
        whole, part = _decimal(mixed_latex.group(2)), _scalar(mixed_latex.group(3))
        if whole is not None and part is not None and part >= 0:
            return -(whole + part) if mixed_latex.group(1) == "-" else whole + part
    mixed = _MIXED.fullmatch(s)
    if mixed and len(s) <= MAX_DIGITS:
        part = _ratio(Fraction(int(mixed.group(3))), Fraction(int(mixed.group(4))))
        value = None if part is None else int(mixed.group(2)) + part
        return -value if value is not None and mixed.group(1) == "-" else value
    if s.count("/") == 1:
        num, _, den = s.partition("/")
        return _ratio(_scalar(num.strip()), _scalar(den.strip()))
    times = _TIMES_TEN.fullmatch(s)
    if times:
        mantissa, power = _scalar(times.group(1)), int(times.group(2))
        return mantissa * Fraction(10) ** power if mantissa is not None and abs(power) <= MAX_EXPONENT else None
    power_ten = _POWER_TEN.fullmatch(s)
    if power_ten:
        power = int(power_ten.group(1))
        return Fraction(10) ** power if abs(power) <= MAX_EXPONENT else None
    return _decimal(s)


def _ratio(num: Fraction | None, den: Fraction | None) -> Fraction | None:
    return None if num is None or den is None or den == 0 else num / den


def to_number(answer: str) -> tuple[Fraction | None, bool]:
    """The value of a normalised answer and whether it was a percentage; (None, False) when it is not a number.
    Currency signs and trailing unit words are dropped."""
    if len(answer) > _MAX_NUMBER_CHARS:
        return None, False
    s = normalize(answer).replace("$", "").replace("€", "").replace("£", "").strip()
    percent = s.endswith("%")
    s = s.rstrip("%").strip()
    value = _scalar(s)
    if value is None:
        unit = _UNIT_TAIL.fullmatch(s)
        # a unit word (two letters or more, or set apart by a space): "18 dollars", "5 m", "7cm"; "3x" is algebra
        if unit and (len(unit.group(2).strip()) > 1 or s[len(unit.group(1))] == " "):
            value = _scalar(unit.group(1).rstrip("."))
    return value, percent and value is not None


def same_number(a: Fraction, b: Fraction, rel_tol: float) -> bool:
    """Equal as integers, or within rel_tol of the larger magnitude when either is not an integer (exact arithmetic:
    no float overflow on huge values)."""
    if a == b:
        return True
    if a.denominator == 1 and b.denominator == 1:
        return False
    return abs(a - b) <= Fraction(rel_tol) * max(abs(a), abs(b))


def equivalent(answer: str, truth: str, rel_tol: float = 1e-4) -> bool:
    """An answer equals the ground truth: as numbers (a percentage also matches its value / 100), else as normalised
    strings with spaces ignored."""
    a, a_pct = to_number(answer)
    t, t_pct = to_number(truth)
    if a is not None and t is not None:
        candidates = [(a, t)]
        if a_pct != t_pct:
            candidates.append((a / 100, t) if a_pct else (a, t / 100))
        return any(same_number(x, y, rel_tol) for x, y in candidates)
    if a is not None or t is not None:
        return False
    left, right = normalize(answer).replace(" ", ""), normalize(truth).replace(" ", "")
    return bool(left) and left == right


def truth_answers(ground_truth: Any) -> list[str]:
    """The acceptable answers in a ground truth: a string (a full solution ending in ``#### N`` or holding a
    ``\\boxed{}`` answer counts by that answer), a number, or a list of either (numpy arrays from parquet too)."""
    if hasattr(ground_truth, "tolist") and not isinstance(ground_truth, str):
        ground_truth = ground_truth.tolist()
    if isinstance(ground_truth, list | tuple):
        return [a for item in ground_truth for a in truth_answers(item)]
    if ground_truth is None or isinstance(ground_truth, bool):
        return []
    text = str(ground_truth).strip()
    boxed = boxed_answers(text)
    if boxed:
        return boxed[-1:]
    marked = _MARKER.findall(text)
    if marked and marked[-1].strip():
        return [marked[-1].strip()]
    return [text] if text else []


def math_score(
    solution_str: str,
    ground_truth: Any,
    extra_info: Any = None,
    *,
    format_score: float = 0.0,
    strict: bool = False,
    rel_tol: float = 1e-4,
    several_answers: str = "reject",
    ignore_prompt_echo: bool = True,
) -> float:
    """1.0 for a correct final answer; `format_score` for a wrong one given in an explicit form (boxed, ``####``,
    "answer is"); 0.0 otherwise. Several distinct boxed / ``####`` answers are hedging: 0.0 under
    ``several_answers="reject"``, the last one counts under ``"last"``. `strict` requires an explicit form."""
    truths = truth_answers(ground_truth)
    response = _strip_echo(str(solution_str or ""), extra_info) if ignore_prompt_echo else str(solution_str or "")
    answers, source = extract_answers(response, strict=strict)
    if not answers or not truths:
        return 0.0
    if several_answers == "reject" and len(answers) > 1:
        first = answers[0]
        if any(not equivalent(other, first, rel_tol) for other in answers[1:]):
            return 0.0
    answer = answers[-1]
    if any(equivalent(answer, truth, rel_tol) for truth in truths):
        return 1.0
    return format_score if source in ("boxed", "marker", "phrase") else 0.0
