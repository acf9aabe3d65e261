"""What the console reads from a run's train.log: the phase markers verl prints, and its warnings.

The job's phases, in order: preparing (model and data, before the job starts: written by the pipeline into
status.json), starting (the job's processes: Ray or torchrun), loading (workers, models, optimizer), training, and
saving (a checkpoint; training resumes after it). Inside verl the phase is known only from verl's own log lines;
these markers were read from real verl 0.9.1 runs (main_ppo, sft_trainer, our DPO trainer) and are matched as
plain substrings, so a changed message only makes the console show a phase late (at the first metrics record
training is certain), never wrong.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

PHASES = ("preparing", "starting", "loading", "training", "saving")
PHASE_LABELS = {
    "preparing": "preparing model and data",
    "starting": "starting Ray",
    "loading": "loading workers",
    "training": "training",
    "saving": "saving checkpoint",
}
STARTING_NO_RAY = "starting processes"

# substring of a train.log line -> the phase it begins
_MARKERS: tuple[tuple[str, str], ...] = (
    ("Started a local Ray instance", "loading"),  # main_ppo: ray.init done, verl builds its workers next
    ("Connected to Ray cluster", "loading"),
    ("Loading weights:", "loading"),  # transformers loading the model (SFT/DPO ranks; RL workers)
    ("Before FSDP, memory allocated", "loading"),
    ("all initialize finished, ready to fit", "training"),  # main_ppo
    ("Training Progress:", "training"),  # main_ppo's tqdm
    ("Epoch 1/", "training"),  # sft_trainer's tqdm
    ("step:1 - ", "training"),
    ("Saving checkpoint to", "saving"),  # main_ppo ("to /path") and sft_trainer ("to: /path")
)

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_RAY_PREFIX = re.compile(r"^\((?:[\w.]+ )?pid=\d+(?:, ip=[\d.]+)?\)\s*")
_REPEATED = re.compile(r"\s*\[repeated (\d+)x across cluster\].*$")
_WARNING = re.compile(r"\bWarning\b|\bWARNING\b|Warning:|^\[rank\d+\]:W\d{4} ")
# prefixes that differ between copies of one warning: log timestamps, logger names, file paths, ranks
_NOISE = (
    re.compile(r"^\[rank\d+\]:W\d{4} [\d:.]+ \d+ "),
    re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ - WARNING - [\w.]+ - "),
    re.compile(r"^WARNING:\d{4}-\d\d-\d\d [\d:,]+:"),
    re.compile(r"^WARNING:[\w.]+:"),
    re.compile(r"^\S+\.py:\d+: (?=\w*Warning)"),
)


def clean(line: str) -> str:
    """A train.log line without ANSI colours and without Ray's `(Actor pid=N)` prefix."""
    return _RAY_PREFIX.sub("", _ANSI.sub("", line)).rstrip()


def phase_marker(line: str) -> str | None:
    """The phase a train.log line shows has begun, or None."""
    for marker, phase in _MARKERS:
        if marker in line:
            return phase
    return None


def warning_of(line: str) -> tuple[str, int] | None:
    """(the warning's message, how many copies the line stands for) when the line is a warning, else None.

    Copies of one warning from different processes, ranks and times give the same message; Ray's
    `[repeated Nx across cluster]` counts as N copies.
    """
    text = clean(line)
    if not _WARNING.search(text) or text.lstrip().startswith("warnings.warn("):
        return None
    count = 1
    repeated = _REPEATED.search(text)
    if repeated:
        count = int(repeated.group(1))
        text = text[: repeated.start()]
    for pattern in _NOISE:
        text = pattern.sub("", text)
    return text.strip()[:200], count


@dataclass
class LogScan:
    """What train.log has shown so far: the latest phase marker and every distinct warning with its count."""

    phase: str | None = None
    warnings: Counter[str] = field(default_factory=Counter)

    def feed(self, lines: list[str]) -> list[str]:
        """Take new lines; returns the phases they began, in order."""
        began: list[str] = []
        for line in lines:
            phase = phase_marker(line)
            if phase is not None:
                self.phase = phase
                began.append(phase)
            warning = warning_of(line)
            if warning is not None:
                self.warnings[warning[0]] += warning[1]
        return began


class Tail:
    """The new complete lines of a file another process appends to, each call reading only what was added.

    A file that was replaced (a resumed attempt's new metrics.jsonl) or truncated is read again from its start.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._inode: int | None = None
        self._pending = b""

    def read(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                stat = os.fstat(f.fileno())
                if stat.st_ino != self._inode or stat.st_size < self._offset:
                    self._inode, self._offset, self._pending = stat.st_ino, 0, b""
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        return [line.decode("utf-8", errors="replace") for line in lines]

    def rest(self) -> list[str]:
        """What is left after the last newline (the job has ended: a last line without a newline is whole)."""
        lines = self.read()
        if self._pending:
            lines.append(self._pending.decode("utf-8", errors="replace"))
            self._pending = b""
        return lines
