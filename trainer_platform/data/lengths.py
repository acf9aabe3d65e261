"""Token lengths of verl rows as the trainers will see them: the model's tokenizer and chat template.

- prompts (RL): the prompt rendered with the generation prompt (what verl's RLHFDataset measures).
- messages (SFT): the whole conversation rendered.
- preference (DPO): the prompt with the generation prompt plus the longer answer plus EOS (verl/tp_dpo_data.py).

Fast path: every turn's content is tokenised in one batch, and the template's own tokens for a sequence of roles
are measured once by rendering it with empty contents. The sum is checked against the full rendering on a sample;
if any row differs (a template that rewrites contents, merges across a boundary), every row is rendered exactly.

The length filter only needs to know which rows are over the limit (`over_limit`). A byte-level tokenizer (ByteLevel
pre-tokenizer or byte fallback, no normalizer that can lengthen text) never makes more tokens of a text than it has
UTF-8 bytes, so a row whose bytes plus template tokens fit is kept without tokenising it; only the others are
measured exactly. The decision is the same as measuring every row.
"""

from __future__ import annotations

import functools
from typing import Any

from trainer_platform.errors import SpecError

_SAMPLE = 48


@functools.lru_cache(maxsize=4)
def load_tokenizer(model_path: str) -> Any:
    """The model's tokenizer (transformers, imported here only)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path)


def token_lengths(
    tokenizer: Any, fmt: str, rows: list[dict[str, Any]], responses: bool = True
) -> tuple[list[int], list[int]]:
    """(prompt or whole-sequence length used for filtering, response length) per row, in tokens.

    With `responses=False` the SFT response lengths are not measured (zeros): the length filter needs the totals.
    """
    if not rows:
        return [], []
    if fmt == "messages":
        convs = [r["messages"] for r in rows]
        total = _conversation_lengths(tokenizer, convs, generation=False)
        if not responses:
            return total, [0] * len(rows)
        last = _content_lengths(tokenizer, [_last_assistant(c) for c in convs])
        return total, last
    prompts = _conversation_lengths(tokenizer, [r["prompt"] for r in rows], generation=True)
    if fmt == "prompts":
        return prompts, [0] * len(rows)
    chosen = _content_lengths(tokenizer, [r["chosen"] for r in rows])
    rejected = _content_lengths(tokenizer, [r["rejected"] for r in rows])
    longer = [max(c, r) + 1 for c, r in zip(chosen, rejected, strict=True)]
    return [p + n for p, n in zip(prompts, longer, strict=True)], longer


def over_limit(tokenizer: Any, fmt: str, rows: list[dict[str, Any]], limit: int) -> list[int | None]:
    """Per row: its measured length when it may be over `limit` (so it is measured), None when it surely fits."""
    if not rows:
        return []
    if not _bytes_bound_tokens(tokenizer):
        return list(token_lengths(tokenizer, fmt, rows)[0])
    bounds = [_byte_bound(tokenizer, fmt, row) for row in rows]
    unsure = [i for i, bound in enumerate(bounds) if bound > limit]
    fits = [i for i, bound in enumerate(bounds) if bound <= limit]
    convs = [rows[i]["messages" if fmt == "messages" else "prompt"] for i in fits]
    shapes = [tuple(t["role"] for t in c) for c in convs]
    checked = _check_rows([any(_interacts(tokenizer, t["content"]) for t in c) for c in convs], shapes)
    if not _splice_holds(tokenizer, [convs[i] for i in checked], fmt != "messages"):
        return list(token_lengths(tokenizer, fmt, rows, responses=False)[0])
    out: list[int | None] = [None] * len(rows)
    if unsure:
        exact, _ = token_lengths(tokenizer, fmt, [rows[i] for i in unsure], responses=False)
        for i, n in zip(unsure, exact, strict=True):
            out[i] = n
    return out


_SAFE_NORMALIZERS = {"NFC", "Lowercase", "Strip", "StripAccents", "Sequence"}


@functools.lru_cache(maxsize=8)
def _bytes_bound_tokens_of(spec: str) -> bool:
    import json

    data = json.loads(spec)
    normalizer = data.get("normalizer")
    stack = [normalizer] if normalizer else []
    while stack:
        node = stack.pop()
        if node.get("type") not in _SAFE_NORMALIZERS:
            return False
        stack += node.get("normalizers", [])
    byte_level = '"ByteLevel"' in json.dumps(data.get("pre_tokenizer"))
    return byte_level or bool((data.get("model") or {}).get("byte_fallback"))


def _bytes_bound_tokens(tokenizer: Any) -> bool:
    """Whether the tokenizer makes at most one token per UTF-8 byte of a text (see the module docstring).

    Decided from the normalizer, pre-tokenizer and model settings alone (serialising the whole tokenizer, vocabulary
    and merges included, cost more than the rest of a GSM8K-sized preparation), once per tokenizer.
    """
    known = tokenizer.__dict__.get("_tp_bytes_bound")
    if known is None:
        import json

        backend = getattr(tokenizer, "backend_tokenizer", None)
        known = False
        if backend is not None:
            parts = {"normalizer": backend.normalizer, "pre_tokenizer": backend.pre_tokenizer}
            spec = {k: json.loads(v.__getstate__()) if v is not None else None for k, v in parts.items()}
            spec["model"] = {"byte_fallback": bool(getattr(backend.model, "byte_fallback", False))}
            known = _bytes_bound_tokens_of(json.dumps(spec))
        tokenizer.__dict__["_tp_bytes_bound"] = known
    return bool(known)


def over_limit_table(tokenizer: Any, fmt: str, table: Any, limit: int) -> dict[int, int]:
    """`over_limit` of verl rows held in an arrow table: {row: measured length} for the rows that may be over."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if not table.num_rows:
        return {}
    if fmt == "preference" or not _bytes_bound_tokens(tokenizer):
        decided = over_limit(tokenizer, fmt, table.to_pylist(), limit)
        return {i: n for i, n in enumerate(decided) if n is not None}
    column = table.column("messages" if fmt == "messages" else "prompt").combine_chunks()
    counts = pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False)
    if not counts.all():  # a row without turns: the row path measures it as it is
        return {i: n for i, n in enumerate(over_limit(tokenizer, fmt, table.to_pylist(), limit)) if n is not None}
    turns = pc.list_flatten(column)
    content = pc.binary_length(pc.struct_field(turns, "content")).to_numpy(zero_copy_only=False) + 1
    starts = np.cumsum(counts) - counts
    sums = np.add.reduceat(content.astype(np.int64), starts) if len(content) else np.zeros(len(counts), np.int64)
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]), type=pa.int32())
    shapes = pc.binary_join(pa.ListArray.from_arrays(offsets, pc.struct_field(turns, "role")), ",")
    shapes = shapes.dictionary_encode()
    generation = fmt != "messages"
    scaffold = [_scaffold(tokenizer, tuple(str(s).split(",")), generation) for s in shapes.dictionary.to_pylist()]
    bounds = np.array(scaffold, dtype=np.int64)[shapes.indices.to_numpy(zero_copy_only=False)] + sums
    unsure = np.flatnonzero(bounds > limit).tolist()
    fits = np.flatnonzero(bounds <= limit)
    text = pc.struct_field(turns, "content")
    touching = pc.match_substring_regex(text, _touch_pattern(tokenizer))  # one pass over the contents
    parent = pc.list_parent_indices(pa.ListArray.from_arrays(offsets, text)).to_numpy(zero_copy_only=False)
    row_touches = np.bincount(parent, weights=touching.to_numpy(zero_copy_only=False), minlength=len(counts)) > 0
    keys = shapes.indices.to_numpy(zero_copy_only=False)[fits].tolist()
    picked = fits[_check_rows(row_touches[fits].tolist(), keys)]
    if not _splice_holds(tokenizer, column.take(pa.array(picked, type=pa.int64())).to_pylist(), generation):
        exact, _ = token_lengths(tokenizer, fmt, table.to_pylist(), responses=False)
        return dict(enumerate(exact))
    if not unsure:
        return {}
    exact, _ = token_lengths(tokenizer, fmt, table.take(unsure).to_pylist(), responses=False)
    return dict(zip(unsure, exact, strict=True))


def _byte_bound(tokenizer: Any, fmt: str, row: dict[str, Any]) -> int:
    """An upper bound of the row's length: template tokens (measured per role sequence) plus content bytes + 1."""
    if fmt == "messages":
        turns, generation, extra = row["messages"], False, 0
    else:
        turns, generation = row["prompt"], True
        extra = 0 if fmt == "prompts" else max(len(row["chosen"].encode()), len(row["rejected"].encode())) + 2
    roles = tuple(t["role"] for t in turns)
    return _scaffold(tokenizer, roles, generation) + sum(len(t["content"].encode()) + 1 for t in turns) + extra


_SENTINEL = "\ue000{}\ue001"


def _touch_pattern(tokenizer: Any) -> str:
    """RE2 pattern of `_interacts`: whitespace (Python's str.strip set) at either end, or a template literal."""
    from trainer_platform.data.columns import SPACE_CLASS

    def escaped(text: str) -> str:
        return "".join(c if c.isascii() and c.isalnum() else f"\\x{{{ord(c):x}}}" for c in text)

    return "|".join([f"^[{SPACE_CLASS}]", f"[{SPACE_CLASS}]$", *map(escaped, _template_literals(tokenizer))])


def _template_literals(tokenizer: Any) -> tuple[str, ...]:
    """The quoted strings of the chat template: a content holding one may steer the template (tested, not assumed)."""
    cache = tokenizer.__dict__
    if "_tp_literals" not in cache:
        import re

        template = getattr(tokenizer, "chat_template", None)
        source = template if isinstance(template, str) else str(template)
        found = set()
        for match in re.finditer(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"", source):
            raw = match.group(1) if match.group(1) is not None else match.group(2)
            for text in (raw, raw.replace("\\n", "\n").replace("\\t", "\t").replace("\\'", "'").replace('\\"', '"')):
                if len(text.strip()) >= 2:
                    found.add(text)
        cache["_tp_literals"] = tuple(sorted(found))
    return tuple(cache["_tp_literals"])


def _interacts(tokenizer: Any, content: str) -> bool:
    """Whether a content might render other than verbatim: edge whitespace, or a string the template tests for."""
    return content != content.strip() or any(literal in content for literal in _template_literals(tokenizer))


def _check_rows(touches: list[bool], shapes: list[Any]) -> list[int]:
    """The rows whose rendering is checked: the first ones, one per role shape, and every one that may interact."""
    first: dict[Any, int] = {}
    for i, shape in enumerate(shapes):
        first.setdefault(shape, i)
    return sorted({*range(min(_SAMPLE, len(shapes))), *first.values(), *(i for i, t in enumerate(touches) if t)})


def _frame(tokenizer: Any, roles: tuple[str, ...], generation: bool) -> list[str] | None:
    """The template's text for a role sequence, split around the contents; None when contents are not put in once,
    verbatim and in order (rendered once per role sequence with placeholder contents)."""
    cache = tokenizer.__dict__.setdefault("_tp_frames", {})
    key = (roles, generation)
    if key not in cache:
        conv = [{"role": r, "content": _SENTINEL.format(i)} for i, r in enumerate(roles)]
        text = _render(tokenizer, [conv], generation)[0]
        parts: list[str] | None = []
        rest = text
        for i in range(len(roles)):
            before, found, rest = rest.partition(_SENTINEL.format(i))
            if not found or parts is None:
                parts = None
                break
            parts.append(before)
        if parts is not None and "\ue000" not in "".join([*parts, rest]):
            parts.append(rest)
        else:
            parts = None
        cache[key] = parts
    return cache[key]


def _splice_holds(tokenizer: Any, convs: list[list[dict[str, str]]], generation: bool) -> bool:
    """Whether each conversation renders as its role sequence's frame with its contents spliced in."""
    if not convs:
        return True
    rendered = _render(tokenizer, convs, generation)
    for conv, text in zip(convs, rendered, strict=True):
        frame = _frame(tokenizer, tuple(t["role"] for t in conv), generation)
        if frame is None:
            return False
        spliced = frame[0] + "".join(t["content"] + part for t, part in zip(conv, frame[1:], strict=True))
        if spliced != text:
            return False
    return True


def _scaffold(tokenizer: Any, roles: tuple[str, ...], generation: bool) -> int:
    cache = tokenizer.__dict__.setdefault("_tp_scaffold", {})
    key = (roles, generation)
    if key not in cache:
        cache[key] = exact_lengths(tokenizer, [[{"role": r, "content": ""} for r in roles]], generation)[0]
    return int(cache[key])


def _last_assistant(turns: list[dict[str, str]]) -> str:
    return next((t["content"] for t in reversed(turns) if t["role"] == "assistant"), "")


def _content_lengths(tokenizer: Any, texts: list[str]) -> list[int]:
    """Token counts of texts, each distinct text tokenised once (repeated system prompts, answers, renderings)."""
    if not texts:
        return []
    distinct = list(dict.fromkeys(texts))
    if len(distinct) < len(texts):
        counted = dict(zip(distinct, _encode_lengths(tokenizer, distinct), strict=True))
        return [counted[t] for t in texts]
    return _encode_lengths(tokenizer, texts)


def _encode_lengths(tokenizer: Any, texts: list[str]) -> list[int]:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and hasattr(backend, "encode_batch_fast"):  # no offsets, no Python-side conversion
        return [len(e.ids) for e in backend.encode_batch_fast(texts, add_special_tokens=False)]
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def _render(tokenizer: Any, convs: list[list[dict[str, str]]], generation: bool) -> list[str]:
    return [_render_one(tokenizer, c, generation) for c in convs]


def _render_one(tokenizer: Any, conv: list[dict[str, str]], generation: bool) -> str:
    """One conversation with the chat template; SpecError when the template refuses it (Gemma's refuses a system
    turn, Mistral's roles that do not alternate: jinja's raise_exception)."""
    from jinja2 import TemplateError

    try:
        return str(tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=generation))
    except TemplateError as exc:
        roles = ", ".join(t["role"] for t in conv)
        raise SpecError(
            "model.path",
            f"the model's chat template refuses a conversation of turns ({roles}): {exc}",
            "shape the rows as the template wants (e.g. no system turn: data.fields.system=null), or pick a model "
            "whose template takes them",
        ) from None


def exact_lengths(tokenizer: Any, convs: list[list[dict[str, str]]], generation: bool) -> list[int]:
    """Every conversation rendered with the chat template, then tokenised (the slow, exact way)."""
    return _content_lengths(tokenizer, _render(tokenizer, convs, generation))


def _conversation_lengths(tokenizer: Any, convs: list[list[dict[str, str]]], generation: bool) -> list[int]:
    if getattr(tokenizer, "chat_template", None) is None:
        raise SpecError(
            "model.path",
            "the model's tokenizer has no chat template, so chat rows cannot be rendered for it",
            "use a chat (instruct) model, or add a chat_template to its tokenizer_config.json",
        )
    flat = [t["content"] for c in convs for t in c]
    content = _content_lengths(tokenizer, flat)
    out, at = [], 0
    for conv in convs:
        out.append(_scaffold(tokenizer, tuple(t["role"] for t in conv), generation) + sum(content[at : at + len(conv)]))
        at += len(conv)
    touches = [any(_interacts(tokenizer, t["content"]) for t in conv) for conv in convs]
    sample = _check_rows(touches, [tuple(t["role"] for t in conv) for conv in convs])
    exact = exact_lengths(tokenizer, [convs[i] for i in sample], generation)
    if any(out[i] != n for i, n in zip(sample, exact, strict=True)):
        return exact_lengths(tokenizer, convs, generation)
    return out
