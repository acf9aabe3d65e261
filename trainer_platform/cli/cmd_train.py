"""`trainer-platform train KEY=VALUE ...`: what `python train.py KEY=VALUE ...` does, for an installed package
(no checkout to hold train.py). Every argument after `train` goes to train.py's entry point unchanged: Hydra
overrides, `-m` sweeps, `--cfg job`, `dry_run=true`, `--help`."""

from __future__ import annotations

import argparse

from rich.console import Console

NAME = "train"
HELP = "train: compose conf/ with KEY=VALUE overrides, validate, plan and launch (same as python train.py ...)"
ORDER = 5
# the arguments after `train` are handed over as they are (app.main): train.py parses its own flags
PASSTHROUGH = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "overrides", nargs=argparse.REMAINDER, metavar="KEY=VALUE", help="overrides and flags, as for train.py"
    )


def run(args: argparse.Namespace, out: Console) -> int:
    from trainer_platform.entry import main

    return main(list(args.overrides))
