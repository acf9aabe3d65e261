"""`trainer-platform watch RUN`: the live view of a run while it trains (the console's renderer), from its run dir.

Progress with step/total and ETA, the key metrics with trend sparklines, anomalies as the diagnostics rules fire;
the same for every launcher: remote ones sync the run dir back on each status call, made here every few seconds.
Reads incrementally (the metrics reader keeps its offsets). Ends with the run's summary."""

from __future__ import annotations

import argparse
import contextlib
import threading

from rich.console import Console

from trainer_platform.cli.common import launcher_state
from trainer_platform.console import follow_run, summary_text
from trainer_platform.runs import RunDir

NAME = "watch"
HELP = "live view of a run: progress, ETA, key metrics with trends, anomalies as they fire"
ORDER = 12
# seconds between two syncs with the launcher (a remote run's files come back then)
SYNC_S = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir")
    parser.add_argument("--plain", action="store_true", help="plain lines even on a terminal")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between two reads of the run dir")


def _sync(run_dir: RunDir, stop: threading.Event) -> None:
    while not stop.is_set():
        # remote launchers copy train.log and metrics.jsonl back and reconcile the status; a host that cannot be
        # reached now leaves what is here on show
        with contextlib.suppress(Exception):
            launcher_state(run_dir)
        stop.wait(SYNC_S)


def run(args: argparse.Namespace, out: Console) -> int:
    run_dir = RunDir.open(args.run_dir)
    if args.poll <= 0:
        from trainer_platform.cli.common import CliError

        raise CliError(f"--poll {args.poll}: must be above 0 (seconds), e.g. --poll 1")
    stop = threading.Event()
    syncer = threading.Thread(target=_sync, args=(run_dir, stop), daemon=True)
    syncer.start()
    try:
        follow_run(run_dir, live=False if args.plain else None, poll_s=args.poll)
    finally:
        stop.set()
    print(summary_text(run_dir), flush=True)
    return 0
