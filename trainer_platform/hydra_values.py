"""How a value is written as a Hydra command-line override (the verl job's argv is a list of them).

Pure string functions, shared by the job builder for our own keys and for the raw `verl:` passthrough block.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


def quote(value: str) -> str:
    """A string as a Hydra override value: bare when Hydra's grammar allows it, quoted otherwise."""
    if re.fullmatch(r"[\w./@%+~-]+", value) and not value.startswith("~"):
        return value
    # inside Hydra's quoted strings a backslash is literal unless it precedes a quote (or ends the string): only
    # those runs are doubled, so regexes and Windows-style paths arrive unchanged
    escaped = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
    escaped = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, escaped)
    return "'" + escaped + "'"


def quote_list(items: tuple[str, ...]) -> str:
    return "[" + ",".join(quote(i) for i in items) + "]"


def merge_passthrough(ours: list[str], raw: list[str]) -> list[str]:
    """Our overrides with the raw verl ones applied: a raw key we also set replaces our value in place (one value
    per key in the command), the others are appended."""
    out = list(ours)
    index = {o.split("=", 1)[0].lstrip("+"): i for i, o in enumerate(out)}
    for override in raw:
        key = override.split("=", 1)[0]
        if key in index:
            prefix = "+" if out[index[key]].startswith("+") else ""
            out[index[key]] = prefix + override
        else:
            out.append(override)
    return out


def flatten_passthrough(raw: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Flatten the `verl:` block into dotted overrides (lists and scalars as Hydra literals)."""
    out: list[str] = []
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out += flatten_passthrough(value, dotted + ".")
        else:
            out.append(f"{dotted}={literal(value)}")
    return out


def literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(literal(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{literal(v)}" for k, v in value.items()) + "}"
    return quote(value) if isinstance(value, str) else str(value)
