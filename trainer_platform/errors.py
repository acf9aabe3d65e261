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
