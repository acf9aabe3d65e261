"""`trainer-platform surgery surgery=NAME key=value ... surgery.output=DIR`: run the surgery group alone.

Same Hydra composition, validation and error rules as train.py; `dry_run=true` prints what would be read and
written, and the expected output size.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.text import Text

from trainer_platform.errors import SpecError

NAME = "surgery"
HELP = "edit a model (merge, LoRA merge, average, vocab/layer edits, GGUF import) into a new HF folder"
ORDER = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="surgery=NAME (conf/surgery/), its keys (surgery.models=[A,B] surgery.t=0.5), surgery.output=DIR, "
        "dry_run=true",
    )


def run(args: argparse.Namespace, out: Console) -> int:
    from trainer_platform.compose import compose_config
    from trainer_platform.prepare import base_model_path
    from trainer_platform.spec import RunSpec
    from trainer_platform.surgery.run import run_surgery

    spec = RunSpec.from_config(compose_config(list(args.overrides)))
    surgery = spec.surgery
    if not surgery.enabled:
        raise SpecError("surgery", "no operations to run", "pick a preset: surgery=slerp|ties|lora_merge|... ")
    if not surgery.output:
        raise SpecError("surgery.output", "is required by this command", "add surgery.output=DIR (a new folder)")
    uses_model = any("@model" in s.sources() or getattr(s, "model", None) == "@prev" for s in surgery.steps[:1])
    model = base_model_path(spec, materialize=uses_model and not spec.dry_run) if uses_model else None

    def log(line: str) -> None:
        out.print(Text(line))

    if spec.dry_run:
        log("trainer_platform surgery dry run (nothing written)")
    target = run_surgery(
        surgery, Path(surgery.output).expanduser().resolve(), model_path=model, dry_run=spec.dry_run, log=log
    )
    if not spec.dry_run:
        log(f"wrote {target} (lineage in {target / 'lineage.json'})")
    return 0
