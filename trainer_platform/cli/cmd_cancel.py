"""`trainer-platform cancel RUN`: stop a run and everything it started."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.text import Text

from trainer_platform.cli.common import CliError
from trainer_platform.runs import CANCELLED, PENDING, RunDir

NAME = "cancel"
HELP = "stop a run and everything it started"
ORDER = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir")


def run(args: argparse.Namespace, out: Console) -> int:
    from launchers.base import handle_of, launcher_for

    run_dir = RunDir.open(args.run_dir)
    status = run_dir.read_status()
    if status.terminal:
        out.print(Text(f"{run_dir.path}: already {status.state}; nothing to cancel"))
        return 0
    if run_dir.load_handle() is None:
        if status.state != PENDING:
            raise CliError(f"{run_dir.path} is {status.state} but has no handle.json; stop its process by hand")
        run_dir.write_status(CANCELLED)
    else:
        handle = handle_of(run_dir)
        launcher_for(handle).cancel(handle)
    out.print(Text(f"{run_dir.path}: {run_dir.read_status().state}"))
    return 0
