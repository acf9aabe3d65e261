"""Reading a log file that a job may still be writing: whole lines, optionally following it until the job is done."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def read_lines(
    path: Path, *, follow: bool = False, done: Callable[[], bool] | None = None, poll_s: float = 0.2
) -> Iterator[str]:
    """Lines of `path` (without newlines). With `follow`, keep reading new lines until `done()` is true, then read
    what is left and stop. A missing file reads as empty; a truncated one is read again from the start."""
    offset = 0
    pending = b""
    while True:
        finished = not follow or (done is not None and done())
        try:
            with open(path, "rb") as f:
                if os.fstat(f.fileno()).st_size < offset:
                    offset, pending = 0, b""
                f.seek(offset)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        offset += len(chunk)
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            yield line.decode("utf-8", errors="replace")
        if finished:
            if pending:
                yield pending.decode("utf-8", errors="replace")
            return
        time.sleep(poll_s)


# CSI (colours, cursor moves) and OSC (titles, links) escape sequences
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def plain(line: str) -> str:
    """`line` as a terminal would leave it, for a pipe or a file: no escape sequences, and of a line that a progress
    bar redrew with carriage returns only its last state."""
    text = _ANSI.sub("", line)
    if "\r" in text:
        parts = [p for p in text.split("\r") if p.strip()]
        text = parts[-1] if parts else ""
    return text
