"""Format and structure scores of a response: regex match, required tags, JSON validity, length.

Pure Python (stdlib only): imported inside verl's reward workers through `tp_rewards.py`. Every score lies in
[0, 1] with 1 for a response that has the wanted form; a composite reward turns a score into a penalty with a
negative weight.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}
_FENCED = re.compile(r"```(?:json)?\s*\n?(.*?)```", re.DOTALL)


def regex_flags(flags: str) -> int:
    """Python re flags from letters (i: ignore case, m: multiline, s: dot matches newline, x: verbose)."""
    value = 0
    for letter in flags:
        value |= _FLAGS[letter]
    return value


def regex_score(
    solution_str: str, *, pattern: str, flags: str = "", mode: str = "search", negate: bool = False
) -> float:
    """1.0 when the pattern is found in the response (mode search) or matches all of it (mode fullmatch); `negate`
    scores 1.0 when it is not (a forbidden phrase)."""
    compiled = re.compile(pattern, regex_flags(flags))
    text = str(solution_str or "")
    found = compiled.fullmatch(text.strip()) if mode == "fullmatch" else compiled.search(text)
    return float((found is not None) != negate)


def _tag_spans(text: str, tag: str) -> list[tuple[int, int, str]]:
    name = re.escape(tag)
    pattern = re.compile(rf"<{name}(?:\s[^<>]*)?>(.*?)</{name}\s*>", re.DOTALL)
    return [(m.start(), m.end(), m.group(1)) for m in pattern.finditer(text)]


def tags_score(
    solution_str: str,
    *,
    tags: Sequence[str] = ("think", "answer"),
    in_order: bool = True,
    only_tags: bool = False,
    partial: bool = False,
) -> float:
    """Each tag present exactly once as ``<tag>non-empty</tag>``; `in_order`: in the listed order without overlap;
    `only_tags`: nothing but whitespace outside them. 1.0 when all hold; with `partial`, the fraction of tags that
    are well formed (order and outside text then cost the rest)."""
    text = str(solution_str or "")
    tags = list(tags)
    if not tags:
        return 1.0
    spans = []
    good = 0
    for tag in tags:
        found = _tag_spans(text, tag)
        opened = len(re.findall(rf"<{re.escape(tag)}(?:\s[^<>]*)?>", text))
        if len(found) == 1 and opened == 1 and found[0][2].strip():
            good += 1
            spans.append(found[0])
    all_good = good == len(tags)
    ordered = all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False)) if in_order else True
    outside_ok = True
    if only_tags:
        rest = text
        for start, end, _ in sorted(spans, reverse=True):
            rest = rest[:start] + rest[end:]
        outside_ok = not rest.strip()
    if all_good and ordered and outside_ok:
        return 1.0
    return good / len(tags) * 0.5 if partial else 0.0


def _json_candidates(text: str) -> list[str]:
    fenced = _FENCED.findall(text)
    if fenced:
        return fenced
    out = [text.strip()]
    for open_, close in (("{", "}"), ("[", "]")):
        start, end = text.find(open_), text.rfind(close)
        if 0 <= start < end:
            out.append(text[start : end + 1])
    return out


def json_score(
    solution_str: str, *, extract: bool = True, required_keys: Sequence[str] = (), object_only: bool = False
) -> float:
    """1.0 when the response is valid JSON (with `extract`: the first ```json fence, or the outermost {...} / [...]
    in it); `object_only` requires an object, `required_keys` names keys it must hold."""
    text = str(solution_str or "")
    candidates = _json_candidates(text) if extract else [text.strip()]
    for candidate in candidates:
        try:
            value: Any = json.loads(candidate)
        except (ValueError, RecursionError):
            continue
        if (object_only or required_keys) and not isinstance(value, dict):
            continue
        if all(key in value for key in required_keys):
            return 1.0
    return 0.0


def length_score(
    solution_str: str, *, unit: str = "words", min_len: int = 0, max_len: int = 512, buffer: int = 128
) -> float:
    """1.0 when the response length (words, or characters with unit chars) lies in [min_len, max_len]; beyond
    max_len it falls linearly to 0.0 over `buffer` more units (DAPO's soft overlong shape, on text rather than
    tokens); below min_len it rises linearly from 0.0 at length 0."""
    text = str(solution_str or "")
    length = len(text.split()) if unit == "words" else len(text)
    if length > max_len:
        return 0.0 if buffer == 0 else max(0.0, 1.0 - (length - max_len) / buffer)
    if length < min_len:
        return length / min_len
    return 1.0
