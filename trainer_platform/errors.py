"""SpecError: bad input, reported as one clear message (train.py prints it and exits 2)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SpecError(Exception):
    """A problem with the user's input: which key or file, what is wrong, how to fix it."""

    def __init__(self, key: str, problem: str, hint: str = "") -> None:
        self.key = key
        self.problem = problem
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.key}: {self.problem}"
        return f"{text}\n  hint: {self.hint}" if self.hint else text


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A 'did you mean X?' phrase for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""


def choices_hint(word: str, choices: Iterable[str]) -> str:
    """A hint naming the closest choice (if any) and listing all allowed ones."""
    options = sorted(choices)
    guess = did_you_mean(word, options)
    listed = "allowed: " + ", ".join(options)
    return f"{guess} {listed}" if guess else listed


def value_hint(key: str, error_type: str, given: object) -> str:
    """How to write a value pydantic refused (error `error_type` on input `given`) for `key`."""
    if error_type in ("list_type", "tuple_type", "set_type") and isinstance(given, str):
        if any(c in given for c in " ,'\""):
            return f"write a list, each item quoted: \"{key}=['{given}']\""
        return f"write a list: {key}=[{given}]"
    if error_type in ("int_parsing", "int_from_float", "int_type"):
        return f"write a whole number, e.g. {key}=3"
    if error_type in ("float_parsing", "float_type"):
        return f"write a number, e.g. {key}=0.5 or {key}=1e-5"
    if error_type in ("bool_parsing", "bool_type"):
        return f"write {key}=true or {key}=false"
    return "fix the value"
