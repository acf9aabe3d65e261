"""SIGINT/SIGTERM while this process follows local jobs: kept for the launcher to act on, not Python's defaults.

A local job runs in a session of its own, so a signal sent to train.py does not reach it: train.py stops the job
itself (launchers/local.py `wait`). Python's defaults (KeyboardInterrupt, or dying on SIGTERM) would instead leave
the job running with nobody to record its end. The hold begins before the first job starts (`submit`) and ends
when this process has no job left to follow (the last `wait`), so a signal that lands between submit and wait, or
between the waits of a batch, is kept for the next wait instead of orphaning the jobs.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SignalHold:
    """`busy()` says whether this process still has jobs to follow; signals that come while it does are appended
    to `received` (in order); one that comes when it has none goes to the handler that was there before."""

    def __init__(self, busy: Callable[[], bool]) -> None:
        self._busy = busy
        self.received: list[int] = []
        self._previous: dict[int, Any] = {}

    def hold(self) -> None:
        """Start keeping signals (only the main thread can; a no-op when already holding)."""
        if self._previous or threading.current_thread() is not threading.main_thread():
            return
        self.received.clear()
        for sig in _SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def release(self, *, force: bool = False) -> None:
        """Give the signals back to their earlier handlers, unless jobs are still followed (`force`: anyway)."""
        if not self._previous or threading.current_thread() is not threading.main_thread():
            return
        if self._busy() and not force:
            return
        previous, self._previous = self._previous, {}
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        self.received.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._busy():
            self.received.append(signum)
            return
        # nothing left to stop (jobs submitted, never waited for, now ended): behave as if never held
        handler = self._previous.get(signum)
        self.release(force=True)
        if callable(handler):
            handler(signum, frame)
        elif handler == signal.SIG_DFL:
            signal.raise_signal(signum)
