"""`trainer-platform presets [GROUP]`: the options of the config groups, each with its description."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.text import Text

from trainer_platform.cli.common import CliError

NAME = "presets"
HELP = "list the options of every config group (or of one) with their descriptions"
ORDER = 70


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("group", nargs="?", help="one group: algorithm, model, data, compute, ...")


def run(args: argparse.Namespace, out: Console) -> int:
    from trainer_platform.compose import GROUPS, describe_groups
    from trainer_platform.errors import choices_hint

    groups: tuple[str, ...] = GROUPS
    if args.group is not None:
        if args.group not in GROUPS:
            raise CliError(f"no config group named {args.group!r}; {choices_hint(args.group, GROUPS)}")
        groups = (args.group,)
    out.print(Text("\n".join(line.removeprefix("  ") for line in describe_groups(groups))), soft_wrap=True)
    if args.group is None:
        out.print(Text("pick one with GROUP=OPTION: python train.py algorithm=sft data=tiny_sft"), soft_wrap=True)
    return 0
