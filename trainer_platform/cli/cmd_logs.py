"""`trainer-platform logs RUN [-f] [--tail N]`: print a run's output (train.log); plain text into pipes."""

from __future__ import annotations

import argparse
import itertools
import sys
from collections import deque
from collections.abc import Iterable, Iterator

from rich.console import Console

from trainer_platform.cli.common import CliError
from trainer_platform.runs import RunDir
from trainer_platform.runs.logs import plain

NAME = "logs"
HELP = "print a run's output (train.log)"
ORDER = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new output until the run ends")
    parser.add_argument("-n", "--tail", type=_count, metavar="N", help="start with the last N lines only")


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a number of lines (0 or more), got {text!r}")
    return int(text)


def _lines(run_dir: RunDir, follow: bool) -> Iterator[str]:
    from launchers.base import handle_of, launcher_for

    if run_dir.load_handle() is None:
        return iter(run_dir.iter_log(follow=False))
    handle = handle_of(run_dir)
    return iter(launcher_for(handle).logs(handle, follow=follow))


def tail_then_follow(now: Iterable[str], later: Iterator[str] | None, n: int) -> Iterator[str]:
    """The last `n` lines of `now`, then what `later` (the same log, read again from the start and followed) yields
    after those lines."""
    seen = 0
    last: deque[str] = deque(maxlen=n)
    for line in now:
        seen += 1
        last.append(line)
    yield from last
    if later is not None:
        yield from itertools.islice(later, seen, None)


def run(args: argparse.Namespace, out: Console) -> int:
    run_dir = RunDir.open(args.run_dir)
    if run_dir.load_handle() is None and not run_dir.log_path.exists():
        raise CliError(f"{run_dir.path} was never launched, so it has no output yet (no train.log)")
    if args.tail is None:
        lines: Iterable[str] = _lines(run_dir, args.follow)
    else:
        lines = tail_then_follow(_lines(run_dir, False), _lines(run_dir, True) if args.follow else None, args.tail)
    clean = (lambda line: line) if sys.stdout.isatty() else plain
    for line in lines:
        sys.stdout.write(clean(line) + "\n")
        sys.stdout.flush()
    return 0
