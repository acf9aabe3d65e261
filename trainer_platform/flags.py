"""One parser for the on/off flags that steer an invocation (`dry_run`, `resume`), on every path.

`python train.py dry_run=1`, `resume=true resume_dir=R dry_run=yes` and `trainer-platform resume R dry_run=1` all read
their flags here, so a value means the same thing wherever it is written.
"""

from __future__ import annotations

from collections.abc import Sequence

from trainer_platform.errors import SpecError

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "", "null", "none")
# keys that steer this invocation rather than describe the run: never taken from a saved spec
INVOCATION_KEYS = ("dry_run", "resume", "resume_dir")


def parse_flag(key: str, value: object) -> bool:
    """`value` (a string from the command line, or a YAML bool/int) as a bool; SpecError naming `key` otherwise."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().strip("'\"").lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise SpecError(key, f"{value!r} is not true or false", f"write {key}=true or {key}=false")


def override_values(overrides: Sequence[str]) -> dict[str, str]:
    """`key=value` overrides as a dict (leading `+`/`++` dropped; the last one of a key wins)."""
    out: dict[str, str] = {}
    for override in overrides:
        if "=" in override:
            key, value = override.split("=", 1)
            out[key.strip().lstrip("+")] = value
    return out


def flag_from(overrides: Sequence[str], key: str) -> bool:
    """The flag `key` as the overrides set it (False when absent)."""
    return parse_flag(key, override_values(overrides).get(key, "false"))


def without_invocation_keys(overrides: Sequence[str], also: Sequence[str] = ()) -> list[str]:
    """The overrides that describe the run: `dry_run`, `resume`, `resume_dir` (and `also`) removed."""
    drop = (*INVOCATION_KEYS, *also)
    return [o for o in overrides if o.split("=", 1)[0].strip().lstrip("+") not in drop]
