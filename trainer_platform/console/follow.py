"""`follow_run`: show a run while it runs, from its run directory alone (any launcher, any process).

On a terminal: a live display (rich) with the phase, step/total, ETA, the key metrics and the warnings so far, each
once with its count. Otherwise plain lines: one per phase, one short line per step. `verbose` adds train.log's
lines (verl's full output) as they are written. The run's own files are never changed, except the phase times
RunWatch records in status.json.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from trainer_platform.console.keys import fmt, fmt_duration
from trainer_platform.console.view import Event, RunWatch, phase_label
from trainer_platform.diagnostics.rules import DiagnosticsConfig
from trainer_platform.runs import RunDir, Status

POLL_S = 0.5
# warnings listed in the live display (the most frequent first); the summary lists them too
LIVE_WARNINGS = 6
# characters of a metric's trend sparkline in the live display
TREND_WIDTH = 12
_BLOCKS = "▁▂▃▄▅▆▇█"


def follow_run(
    run_dir: RunDir,
    *,
    out: TextIO | None = None,
    live: bool | None = None,
    verbose: bool = False,
    stop: threading.Event | None = None,
    poll_s: float = POLL_S,
    diagnostics: DiagnosticsConfig | None = None,
) -> Status:
    """Render `run_dir` until its status is terminal (or `stop` is set); return the last status read.

    `out`: where to write (default sys.stdout); `live`: the rich display (None: when `out` is a terminal);
    `verbose`: also show train.log's lines as they come; `diagnostics`: run these rules on each step and show what
    fires (default: the run's own, see trainer_platform.diagnostics.for_run).
    """
    out = sys.stdout if out is None else out
    if live is None:
        live = out.isatty()
    if diagnostics is None:
        from trainer_platform.diagnostics.for_run import config_for_run

        diagnostics = config_for_run(run_dir)
    watch = RunWatch(run_dir, with_log_lines=verbose, diagnostics=diagnostics)
    return _follow_live(watch, out, stop, poll_s) if live else _follow_plain(watch, out, stop, poll_s)


def show_while(run_dir: RunDir, wait: Callable[[], int], *, out: TextIO | None = None, verbose: bool = False) -> int:
    """Call `wait()` (a launcher's wait: it stays in this thread, where signal handlers work) while `follow_run`
    shows the run from another thread; return what `wait()` returned. A console that fails never stops the run."""
    stop = threading.Event()
    failure: list[BaseException] = []

    def show() -> None:
        try:
            follow_run(run_dir, out=out, verbose=verbose, stop=stop)
        except Exception as exc:  # noqa: BLE001 - the display is best effort; the run goes on
            failure.append(exc)

    thread = threading.Thread(target=show, name="trainer-platform-console", daemon=True)
    thread.start()
    try:
        return wait()
    finally:
        stop.set()  # the run's status is final by now; the display reads the files to their end and stops
        thread.join(timeout=30)
        if failure:
            print(f"trainer_platform: the console stopped ({type(failure[0]).__name__}: {failure[0]})", file=sys.stderr)


def _polls(watch: RunWatch, stop: threading.Event | None, poll_s: float) -> Iterator[list[Event]]:
    """Batches of events until the run is terminal or `stop` is set, the last batch read to the files' end."""
    while True:
        stopped = stop is not None and stop.is_set()
        events = watch.poll()
        if watch.status.terminal or stopped:
            yield events + watch.poll(final=True)
            return
        yield events
        if stop is not None:
            stop.wait(poll_s)
        else:
            time.sleep(poll_s)


def plain_line(watch: RunWatch, event: Event) -> str | None:
    """The plain-mode line of one event."""
    if event.kind == "phase":
        return f"[{fmt_duration(event.at_s)}] {phase_label(event.name, watch.uses_ray)}"
    if event.kind == "step":
        total = f"/{watch.total}" if watch.total else ""
        parts = [f"step {event.step}{total}"]
        parts += [f"{label} {fmt(value)}" for label, value in event.values.items() if value is not None]
        eta = watch.eta_s()
        if eta is not None and watch.total and event.step < watch.total:
            parts.append(f"ETA {fmt_duration(eta)}")
        return "  ".join(parts)
    if event.kind == "log":
        return event.text
    if event.kind == "anomaly":
        return f"anomaly: {event.text}"
    return None


def _follow_plain(watch: RunWatch, out: TextIO, stop: threading.Event | None, poll_s: float) -> Status:
    for events in _polls(watch, stop, poll_s):
        lines = [line for line in (plain_line(watch, e) for e in events) if line is not None]
        if lines:
            out.write("\n".join(lines) + "\n")
            out.flush()
    return watch.status


def sparkline(values: Sequence[float], width: int) -> str:
    """The last `width` values as a one-line trend of block characters (empty when there are none)."""
    points = [v for v in list(values)[-width:] if v == v and abs(v) != float("inf")]
    if not points:
        return ""
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    return "".join(_BLOCKS[min(len(_BLOCKS) - 1, int((v - low) / span * len(_BLOCKS)))] for v in points)


def live_view(watch: RunWatch) -> RenderableType:
    """The live display: phase and elapsed time, step/total with a bar and ETA, key metrics, warnings."""
    phase = phase_label(watch.phase, watch.uses_ray) if watch.phase else "waiting for the job"
    head = Text.assemble((f"{phase}", "bold cyan"), f"   elapsed {fmt_duration(watch.elapsed())}")
    parts: list[RenderableType] = [head]
    if watch.total:
        done = watch.step or 0
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            f"step {done}/{watch.total}",
            ProgressBar(total=watch.total, completed=done, width=30),
            f"ETA {fmt_duration(watch.eta_s())}",
        )
        parts.append(bar)
    elif watch.step:
        parts.append(Text(f"step {watch.step}"))
    metrics = Table.grid(padding=(0, 2))
    labels = list(watch.latest)
    metrics.add_row(*[Text(label, style="dim") for label in labels])
    metrics.add_row(*[fmt(watch.latest[label]) for label in labels])
    metrics.add_row(*[Text(sparkline(watch.trends[label], TREND_WIDTH), style="cyan") for label in labels])
    parts.append(metrics)
    fired = watch.detector.anomalies if watch.detector is not None else []
    if fired:
        parts.append(Text(f"anomalies ({len(fired)}, also in diagnostics.jsonl when the monitor ran)", style="red"))
        parts += [Text(f"  {a.line()}", style="red", no_wrap=True, overflow="ellipsis") for a in fired[-LIVE_WARNINGS:]]
    if watch.log.warnings:
        common = watch.log.warnings.most_common(LIVE_WARNINGS)
        more = len(watch.log.warnings) - len(common)
        parts.append(Text(f"warnings ({len(watch.log.warnings)} distinct, full text in train.log)", style="yellow"))
        parts += [Text(f"  x{n} {msg}", style="yellow", no_wrap=True, overflow="ellipsis") for msg, n in common]
        if more:
            parts.append(Text(f"  ... and {more} more", style="yellow"))
    return Group(*parts)


def _follow_live(watch: RunWatch, out: TextIO, stop: threading.Event | None, poll_s: float) -> Status:
    console = Console(file=out, force_terminal=True)
    # redrawn once per poll (the elapsed time moves with it), not by rich's refresh thread: a watch costs ~1/4 the CPU
    with Live(live_view(watch), console=console, auto_refresh=False, transient=False) as display:
        for events in _polls(watch, stop, poll_s):
            for event in events:
                if event.kind == "log":
                    console.print(Text.from_ansi(event.text), soft_wrap=True)
            display.update(live_view(watch), refresh=True)
    return watch.status
