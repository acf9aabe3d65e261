"""What is in a source, as the trainers will see it: `trainer-platform data inspect SOURCE [overrides]`.

Every row is read and mapped (data.fields). Rows the mapping refuses are counted by field and problem, not fatal:
finding them is the point. A source that cannot be parsed (an unreadable file, invalid JSON on a line, a CSV row
with extra values) is: SpecError naming file:line, exit 2. Token lengths use the model's tokenizer and chat
template (data/lengths.py).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer_platform.data.mapping import BadRow, row_mapper
from trainer_platform.data.sources import RowProblem, read_source
from trainer_platform.errors import SpecError

if TYPE_CHECKING:
    from trainer_platform.spec import DataSpec

# a response this short (in tokens) is reported as very short
SHORT_RESPONSE_TOKENS = 3
_BINS = 10


@dataclass
class Inspection:
    """The findings about one source."""

    source: str
    fmt: str
    read: int = 0
    mapped: int = 0
    problems: Counter = field(default_factory=Counter)
    problem_examples: list[str] = field(default_factory=list)
    prompt_lengths: list[int] = field(default_factory=list)
    response_lengths: list[int] = field(default_factory=list)
    duplicate_rows: int = 0
    duplicate_prompts: int = 0
    empty_responses: int = 0
    short_responses: int = 0
    over_limit: int = 0
    limit: int = 0
    ground_truth: int = 0
    samples: list[str] = field(default_factory=list)


def inspect_source(
    data: DataSpec, source: Path, tokenizer: Any, limit: int, *, split: str = "train", samples: int = 3
) -> Inspection:
    """Read, map and measure every row of `source` under `data`'s mapping."""
    from trainer_platform.data.lengths import token_lengths
    from trainer_platform.data.validate import data_settings

    fields, split_settings, _ = data_settings(data)
    rows = read_source(source, split, key="SOURCE")
    found = Inspection(source=str(source), fmt=data.format, limit=limit)
    mapper = row_mapper(data.format, fields, name=data.name)
    mapped: list[dict[str, Any]] = []
    for label, row in zip(rows.labels, rows.rows, strict=True):
        found.read += 1
        if isinstance(row, RowProblem):
            raise SpecError(label, row.problem, row.hint)
        try:
            mapped.append(mapper(row, split, len(mapped)))
        except BadRow as bad:
            found.problems[f"{bad.field or 'row'}: {_kind_of(bad.problem)}"] += 1
            if len(found.problem_examples) < 5:
                found.problem_examples.append(f"{label}: field {bad.field!r} {bad.problem}")
    found.mapped = len(mapped)
    if data.format == "prompts":
        found.ground_truth = found.mapped
    if mapped:
        lengths = token_lengths(tokenizer, data.format, mapped)
        found.over_limit = sum(n > limit for n in lengths[0])
        found.prompt_lengths, found.response_lengths = _lengths(lengths, data)
    _duplicates(found, mapped)
    _responses(found, mapped, tokenizer)
    found.samples = [_render(tokenizer, data.format, row) for row in mapped[:samples]]
    return found


def _kind_of(problem: str) -> str:
    """A problem without its row-specific tail, so equal problems count together."""
    return problem.split(":")[0].split(" (")[0]


def _lengths(lengths: tuple[list[int], list[int]], data: DataSpec) -> tuple[list[int], list[int]]:
    total, response = lengths
    if data.format == "prompts":
        return total, []
    # SFT: the whole conversation, DPO: prompt + the longer answer; the prompt part is the rest
    return [t - r for t, r in zip(total, response, strict=True)], response


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _duplicates(found: Inspection, rows: list[dict[str, Any]]) -> None:
    whole = Counter(_key({k: v for k, v in r.items() if k != "extra_info"}) for r in rows)
    found.duplicate_rows = sum(n - 1 for n in whole.values() if n > 1)
    column = "messages" if found.fmt == "messages" else "prompt"
    prompts = Counter(_key(r[column][:-1] if column == "messages" else r[column]) for r in rows)
    found.duplicate_prompts = sum(n - 1 for n in prompts.values() if n > 1)


def _responses(found: Inspection, rows: list[dict[str, Any]], tokenizer: Any) -> None:
    if found.fmt == "prompts":
        return
    texts: list[str] = []
    for row in rows:
        if found.fmt == "messages":
            texts.append(next((t["content"] for t in reversed(row["messages"]) if t["role"] == "assistant"), ""))
        else:
            texts += [row["chosen"], row["rejected"]]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    found.empty_responses = sum(not t.strip() for t in texts)
    found.short_responses = sum(0 < len(i) < SHORT_RESPONSE_TOKENS for i in ids)


def _render(tokenizer: Any, fmt: str, row: dict[str, Any]) -> str:
    if fmt == "messages":
        return str(tokenizer.apply_chat_template(row["messages"], tokenize=False))
    text = str(tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True))
    if fmt == "preference":
        return f"{text}[chosen] {row['chosen']}\n[rejected] {row['rejected']}"
    return f"{text}[ground truth] {row['reward_model']['ground_truth']}"


def histogram(values: list[int], width: int = 40) -> list[str]:
    """Text bars of a length distribution in _BINS equal bins."""
    if not values:
        return ["(none)"]
    low, high = min(values), max(values)
    step = max(1, -(-(high - low + 1) // _BINS))
    counts = Counter((v - low) // step for v in values)
    peak = max(counts.values())
    lines = []
    for b in range(-(-(high - low + 1) // step)):
        start = low + b * step
        n = counts.get(b, 0)
        lines.append(f"{start:>6}-{start + step - 1:<6} {n:>7} {'#' * round(width * n / peak)}")
    return lines


def percentiles(values: list[int]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)

    def at(q: float) -> int:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return f"min {ordered[0]}, p50 {at(0.5)}, p90 {at(0.9)}, p99 {at(0.99)}, max {ordered[-1]}"


def report_lines(found: Inspection) -> list[str]:
    """The inspection as text."""
    lines = [
        f"source   {found.source} ({found.fmt})",
        f"rows     {found.read} read, {found.mapped} usable, {found.read - found.mapped} refused by the mapping",
    ]
    for problem, n in found.problems.most_common():
        lines.append(f"  {n:>7} x {problem}")
    lines += [f"  e.g. {example}" for example in found.problem_examples]
    if found.fmt == "prompts":
        share = found.ground_truth / found.read if found.read else 0.0
        lines.append(f"ground truth  {found.ground_truth}/{found.read} rows ({share:.1%})")
    lines.append(f"duplicates    {found.duplicate_rows} repeated rows, {found.duplicate_prompts} repeated prompts")
    if found.fmt != "prompts":
        lines.append(
            f"responses     {found.empty_responses} empty, {found.short_responses} under {SHORT_RESPONSE_TOKENS} tokens"
        )
    what = "prompt (chat template)" if found.fmt != "messages" else "conversation before the last answer"
    lines.append(f"tokens: {what}: {percentiles(found.prompt_lengths)}")
    lines += ["  " + line for line in histogram(found.prompt_lengths)]
    if found.response_lengths:
        lines.append(f"tokens: response: {percentiles(found.response_lengths)}")
        lines += ["  " + line for line in histogram(found.response_lengths)]
    lines.append(f"over the limit ({found.limit} tokens): {found.over_limit} rows would be dropped")
    for number, sample in enumerate(found.samples, start=1):
        lines += [f"--- sample {number} ---", sample]
    return lines
