"""`trainer-platform resume RUN [KEY=VALUE ...]`: continue a run from its last checkpoint."""

from __future__ import annotations

import argparse

from rich.console import Console

from trainer_platform.cli.common import CliError
from trainer_platform.runs import RunDir

NAME = "resume"
HELP = "continue a run from its last checkpoint (same run dir, same W&B run)"
ORDER = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir")
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="changes to the saved spec, e.g. train.steps=20"
    )


def run(args: argparse.Namespace, out: Console) -> int:
    run_dir = RunDir.open(args.run_dir)
    try:
        from trainer_platform.pipeline import resume_run
    except ModuleNotFoundError as e:
        if e.name != "trainer_platform.pipeline":
            raise
        raise CliError(f"{run_dir.path}: resume is not available (trainer_platform.pipeline is missing)") from None

    return resume_run(run_dir.path, args.overrides) if args.overrides else resume_run(run_dir.path)
