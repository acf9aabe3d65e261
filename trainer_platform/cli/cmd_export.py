"""`trainer-platform export RUN [--step N] [--out DIR]`: a checkpoint as a Hugging Face model directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.text import Text

from trainer_platform.runs import RunDir

NAME = "export"
HELP = "write a run's checkpoint as a Hugging Face model folder (default: the last one, to RUN/export/step-N)"
ORDER = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir")
    parser.add_argument("--step", type=int, help="the checkpoint's step (default: the last complete checkpoint)")
    parser.add_argument("--out", type=Path, help="an empty or new folder (default: RUN/export/step-N)")


def run(args: argparse.Namespace, out: Console) -> int:
    from trainer_platform.export import export, plan_export

    plan = plan_export(RunDir.open(args.run_dir), args.step, args.out)
    out.print(Text(f"exporting step {plan.step} of {plan.run} with verl's model merger ..."), soft_wrap=True)
    target = export(plan)
    out.print(Text(f"exported to {target}"), soft_wrap=True)
    out.print(Text(f"load it with AutoModelForCausalLM/AutoTokenizer.from_pretrained({str(target)!r})"), soft_wrap=True)
    return 0
