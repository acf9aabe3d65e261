"""Token lengths of verl rows as the trainers will see them: the model's tokenizer and chat template.

- prompts (RL): the prompt rendered with the generation prompt (what verl's RLHFDataset measures).
- messages (SFT): the whole conversation rendered.
- preference (DPO): the prompt with the generation prompt plus the longer answer plus EOS (verl/tp_dpo_data.py).

Fast path: every turn's content is tokenised in one batch, and the template's own tokens for a sequence of roles
are measured once by rendering it with empty contents. The sum is checked against the full rendering on a sample;
if any row differs (a template that rewrites contents, merges across a boundary), every row is rendered exactly.
"""

from __future__ import annotations

import functools
from typing import Any

_SAMPLE = 48


@functools.lru_cache(maxsize=4)
def load_tokenizer(model_path: str) -> Any:
    """The model's tokenizer (transformers, imported here only)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path)


def token_lengths(tokenizer: Any, fmt: str, rows: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
    """(prompt or whole-sequence length used for filtering, response length) per row, in tokens."""
    if not rows:
        return [], []
    if fmt == "messages":
        convs = [r["messages"] for r in rows]
        total = _conversation_lengths(tokenizer, convs, generation=False)
        last = _content_lengths(tokenizer, [_last_assistant(c) for c in convs])
        return total, last
    prompts = _conversation_lengths(tokenizer, [r["prompt"] for r in rows], generation=True)
    if fmt == "prompts":
        return prompts, [0] * len(rows)
    chosen = _content_lengths(tokenizer, [r["chosen"] for r in rows])
    rejected = _content_lengths(tokenizer, [r["rejected"] for r in rows])
    longer = [max(c, r) + 1 for c, r in zip(chosen, rejected, strict=True)]
    return [p + n for p, n in zip(prompts, longer, strict=True)], longer


def _last_assistant(turns: list[dict[str, str]]) -> str:
    return next((t["content"] for t in reversed(turns) if t["role"] == "assistant"), "")


def _content_lengths(tokenizer: Any, texts: list[str]) -> list[int]:
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def _render(tokenizer: Any, convs: list[list[dict[str, str]]], generation: bool) -> list[str]:
    return [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=generation) for c in convs]


def exact_lengths(tokenizer: Any, convs: list[list[dict[str, str]]], generation: bool) -> list[int]:
    """Every conversation rendered with the chat template, then tokenised (the slow, exact way)."""
    return _content_lengths(tokenizer, _render(tokenizer, convs, generation))


def _conversation_lengths(tokenizer: Any, convs: list[list[dict[str, str]]], generation: bool) -> list[int]:
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("the model's tokenizer has no chat template, so chat rows cannot be rendered for it")
    flat = [t["content"] for c in convs for t in c]
    content = _content_lengths(tokenizer, flat)
    scaffold: dict[tuple[str, ...], int] = {}
    out, at = [], 0
    for conv in convs:
        roles = tuple(t["role"] for t in conv)
        if roles not in scaffold:
            empty = [{"role": r, "content": ""} for r in roles]
            scaffold[roles] = exact_lengths(tokenizer, [empty], generation)[0]
        out.append(scaffold[roles] + sum(content[at : at + len(conv)]))
        at += len(conv)
    sample = sorted({*range(min(_SAMPLE, len(convs))), *_one_per_shape(convs)})
    exact = exact_lengths(tokenizer, [convs[i] for i in sample], generation)
    if any(out[i] != n for i, n in zip(sample, exact, strict=True)):
        return exact_lengths(tokenizer, convs, generation)
    return out


def _one_per_shape(convs: list[list[dict[str, str]]]) -> list[int]:
    seen: dict[tuple[str, ...], int] = {}
    for i, conv in enumerate(convs):
        seen.setdefault(tuple(t["role"] for t in conv), i)
    return list(seen.values())[:_SAMPLE]
