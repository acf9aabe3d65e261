"""`trainer-platform list [ROOT]`: the short form of `runs` (same index, same rows), 80 columns wide, unfiltered."""

from __future__ import annotations

import argparse

from rich.console import Console

from trainer_platform.cli import cmd_runs

NAME = "list"
HELP = "table of the runs under a folder: state, step/target, main metric, checkpoint (see `runs` for filters)"
ORDER = 40


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", nargs="?", default="runs")


def run(args: argparse.Namespace, out: Console) -> int:
    return cmd_runs.show(args, out, detailed=False)
