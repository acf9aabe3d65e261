"""One source row -> one row in verl's format, following the field mapping (data.fields); `BadRow` names the field.

verl's formats:
- messages (SFT): `messages`, a list of {role, content} turns with at least one assistant turn.
- prompts (RL): `data_source`, `prompt` (chat turns), `ability`, `reward_model: {style: rule, ground_truth}`,
  `extra_info` (split, index, and where the row came from).
- preference (DPO): `prompt` (chat turns), `chosen`, `rejected` (the answers as text), as verl/tp_dpo_data.py reads.

Source shapes read: chat turns as lists of {role, content} or ShareGPT's {from, value} (also JSON-encoded, as CSV
holds them); plain-text prompts and responses; DPO answers as text or as whole conversations that share the prompt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from trainer_platform.data.settings import FieldMap

ROLES = ("system", "user", "assistant", "tool")
_SHAREGPT_ROLES = {"human": "user", "gpt": "assistant", "system": "system", "user": "user", "assistant": "assistant"}
_NUMBER = re.compile(r"^-?\$?\s*\d[\d,]*(\.\d+)?%?$|^-?\.\d+%?$|^-?\d+/\d+$")


class BadRow(Exception):
    """A row that cannot become a verl row: the field (dotted, '' for the whole row) and what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}" if field else problem)


def row_mapper(fmt: str, fields: FieldMap, *, name: str) -> Callable[[dict[str, Any], str, int], dict[str, Any]]:
    """The function (row, split, index) -> verl row for a data format."""
    pattern = compile_pattern(fields.ground_truth_pattern)
    # rows already in verl's RL format (verl's preprocessing scripts write them) pass through with verl's names
    verl_rl = FieldMap(
        data_source_default=fields.data_source_default,
        ground_truth_numeric=fields.ground_truth_numeric,
        ability_default=fields.ability_default,
    )

    def messages(row: dict[str, Any], split: str, index: int) -> dict[str, Any]:
        if _has(row, fields.messages):
            turns = _turns(row, fields.messages)
        else:
            if not _has(row, fields.prompt):
                raise BadRow(fields.messages, f"is missing (and so is {fields.prompt!r} to build turns from)")
            turns = [_turn("user", _text(row, fields.prompt)), _turn("assistant", _text(row, fields.response))]
        turns = _with_system(turns, fields.system)
        if not any(t["role"] == "assistant" for t in turns):
            raise BadRow(fields.messages, "has no assistant turn to learn from")
        return {"messages": turns}

    def prompts(row: dict[str, Any], split: str, index: int) -> dict[str, Any]:
        is_verl = not _has(row, fields.prompt) and isinstance(row.get("prompt"), list)
        use = verl_rl if is_verl else fields
        turns = _prompt_turns(row, use)
        truth = _ground_truth(row, use, None if is_verl else pattern)
        source = _get(row, use.data_source) if _has(row, use.data_source) else use.data_source_default
        if not isinstance(source, str) or not source:
            raise BadRow(use.data_source, "is missing or empty (or set data.fields.data_source_default)")
        extra = _get(row, "extra_info") if _has(row, "extra_info") else None
        return {
            "data_source": source,
            "prompt": turns,
            "ability": str(_get(row, use.ability) or use.ability_default or name),
            "reward_model": {"style": "rule", "ground_truth": truth},
            "extra_info": {**(extra if isinstance(extra, dict) else {}), "split": split, "index": index},
        }

    def preference(row: dict[str, Any], split: str, index: int) -> dict[str, Any]:
        chosen, rejected = _get_required(row, fields.chosen), _get_required(row, fields.rejected)
        if isinstance(chosen, str) or isinstance(rejected, str):
            turns = _prompt_turns(row, fields)
            return {"prompt": turns, "chosen": _text(row, fields.chosen), "rejected": _text(row, fields.rejected)}
        good, bad = _turns(row, fields.chosen), _turns(row, fields.rejected)  # paired conversations
        if good[-1]["role"] != "assistant" or bad[-1]["role"] != "assistant":
            raise BadRow(fields.chosen, "conversations must end with the assistant's answer")
        if good[:-1] != bad[:-1]:
            raise BadRow(fields.rejected, f"does not share the prompt turns of {fields.chosen!r}")
        prompt = _with_system(good[:-1], fields.system) if good[:-1] else _prompt_turns(row, fields)
        return {"prompt": prompt, "chosen": good[-1]["content"], "rejected": bad[-1]["content"]}

    return {"messages": messages, "prompts": prompts, "preference": preference}[fmt]


def compile_pattern(pattern: str | None) -> re.Pattern[str] | str | None:
    if pattern in (None, "boxed"):
        return pattern
    return re.compile(pattern, re.MULTILINE)  # checked by check_pattern at validation


def check_pattern(pattern: str | None) -> str:
    """Why a ground-truth pattern is unusable ('' when fine)."""
    if pattern in (None, "boxed"):
        return ""
    try:
        compiled = re.compile(pattern, re.MULTILINE)
    except re.error as exc:
        return f"is not a valid regular expression ({exc})"
    return "" if compiled.groups >= 1 else "has no (group) around the answer"


def _get(row: dict[str, Any], path: str) -> Any:
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _has(row: dict[str, Any], path: str) -> bool:
    return _get(row, path) is not None


def _get_required(row: dict[str, Any], path: str) -> Any:
    value = _get(row, path)
    if value is None:
        raise BadRow(path, "is missing")
    return value


def _text(row: dict[str, Any], path: str) -> str:
    value = _get_required(row, path)
    if not isinstance(value, str):
        raise BadRow(path, f"must be text, not {type(value).__name__}")
    if not value.strip():
        raise BadRow(path, "is empty")
    return value


def _turn(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def _turns(row: dict[str, Any], path: str) -> list[dict[str, str]]:
    value = _get_required(row, path)
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise BadRow(path, f"holds invalid JSON ({exc})") from None
    if isinstance(value, list) and not value:
        raise BadRow(path, "is an empty list: it needs chat turns")
    if not isinstance(value, list):
        raise BadRow(path, f"must be a non-empty list of chat turns, not {type(value).__name__}")
    turns = []
    for number, turn in enumerate(value):
        if not isinstance(turn, dict):
            raise BadRow(f"{path}[{number}]", f"must be a {{role, content}} mapping, not {type(turn).__name__}")
        role = turn.get("role") if "role" in turn else _SHAREGPT_ROLES.get(str(turn.get("from")))
        content = turn.get("content") if "content" in turn else turn.get("value")
        if role not in ROLES and "role" not in turn and "from" in turn:
            speakers = ", ".join(_SHAREGPT_ROLES)
            raise BadRow(f"{path}[{number}].from", f"is {turn.get('from')!r}; expected one of {speakers}")
        if role not in ROLES:
            raise BadRow(f"{path}[{number}].role", f"is {role!r}; expected one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise BadRow(f"{path}[{number}].content", f"must be text, not {type(content).__name__}")
        if not content.strip() and role == "assistant":
            raise BadRow(f"{path}[{number}].content", "is empty")
        turns.append(_turn(str(role), content))
    return turns


def _is_json_turns(text: str) -> bool:
    """Whether a text is chat turns encoded as JSON (as CSV holds them), not a prompt that starts with '['."""
    if not text.lstrip().startswith("["):
        return False
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return isinstance(value, list) and bool(value) and all(isinstance(t, dict) for t in value)


def _with_system(turns: list[dict[str, str]], system: str | None) -> list[dict[str, str]]:
    if system and (not turns or turns[0]["role"] != "system"):
        return [_turn("system", system), *turns]
    return turns


def _prompt_turns(row: dict[str, Any], fields: FieldMap) -> list[dict[str, str]]:
    value = _get_required(row, fields.prompt)
    if isinstance(value, str) and not _is_json_turns(value):
        text = _text(row, fields.prompt)
        turns = [_turn("user", fields.instruction.replace("{prompt}", text) if fields.instruction else text)]
    else:
        turns = _turns(row, fields.prompt)
        if not any(t["role"] == "user" and t["content"].strip() for t in turns):
            raise BadRow(fields.prompt, "has no non-empty user turn")
    return _with_system(turns, fields.system)


def _ground_truth(row: dict[str, Any], fields: FieldMap, pattern: re.Pattern[str] | str | None) -> str:
    return ground_truth_text(_get_required(row, fields.ground_truth), fields, pattern)


def ground_truth_text(value: Any, fields: FieldMap, pattern: re.Pattern[str] | str | None) -> str:
    """The ground truth verl's row gets from a (present) source value; BadRow names data.fields.ground_truth."""
    path = fields.ground_truth
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BadRow(path, f"must be text or a number, not {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise BadRow(path, "is empty")
    if pattern == "boxed":
        found = last_boxed(text)
        if found is None:
            raise BadRow(path, "has no \\boxed{...} answer")
        text = found
    elif pattern is not None:
        assert isinstance(pattern, re.Pattern)
        matches = list(pattern.finditer(text))
        if not matches:
            raise BadRow(path, f"does not match the ground-truth pattern {pattern.pattern!r}: {text[-60:]!r}")
        text = (matches[-1].group(1) or "").strip()
        if not text:
            raise BadRow(path, f"the pattern {pattern.pattern!r} found an empty answer")
    if fields.ground_truth_numeric and not _NUMBER.match(text.replace(" ", "")):
        raise BadRow(path, f"ground truth {text[:40]!r} is not a number")
    return text.replace(",", "") if fields.ground_truth_numeric else text


def last_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} (or \\fbox{...}) in a text, braces balanced; None when there is none."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0:
        return None
    depth = 0
    for i in range(brace, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[brace + 1 : i].strip() or None
    return None
