"""`trainer-platform logs RUN [-f]`: print a run's output (train.log)."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from trainer_platform.runs import RunDir

NAME = "logs"
HELP = "print a run's output (train.log)"
ORDER = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new output until the run ends")


def run(args: argparse.Namespace, out: Console) -> int:
    from launchers.base import handle_of, launcher_for

    run_dir = RunDir.open(args.run_dir)
    if run_dir.load_handle() is None:
        lines = run_dir.iter_log(follow=False)
    else:
        handle = handle_of(run_dir)
        lines = launcher_for(handle).logs(handle, follow=args.follow)
    for line in lines:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    return 0
