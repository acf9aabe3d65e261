"""`trainer-platform data inspect SOURCE [OVERRIDES]` and `trainer-platform data prepare [OVERRIDES]`.

inspect: counts, token-length histograms, duplicates, empty or very short responses, ground-truth coverage and a
few samples rendered with the chat template, for any source under a data preset's mapping (data=gsm8k,
data.fields.prompt=question, ...). prepare: converts a run's data into verl's parquet in the cache (what train.py
would train on) without training, and prints where, its content hash and the row counts.
Overrides are those of train.py. The algorithm follows the data format unless given.
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.text import Text

NAME = "data"
HELP = "inspect a data source, or prepare a run's data as verl parquet without training"
ORDER = 55

_ALGORITHM_FOR_FORMAT = {"messages": "sft", "prompts": "grpo", "preference": "dpo"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    inspect = sub.add_parser("inspect", help="what a source holds, as the trainer will see it")
    inspect.add_argument("source", help="a JSONL/JSON/CSV/parquet file or a datasets folder")
    inspect.add_argument("overrides", nargs="*", help="config overrides: data=gsm8k data.fields.prompt=question ...")
    inspect.add_argument("--samples", type=int, default=3, help="rows to show rendered with the chat template")
    prepare = sub.add_parser("prepare", help="write a run's data as verl parquet (cached), without training")
    prepare.add_argument("overrides", nargs="*", help="config overrides, as for train.py (data=gsm8k ...)")


def run(args: argparse.Namespace, out: Console) -> int:
    if args.action == "inspect":
        return _inspect(args, out)
    return _prepare(args, out)


def data_spec(overrides: list[str]):  # -> RunSpec
    """The validated spec of `overrides`, with the algorithm family the data format needs unless one is given."""
    from trainer_platform.compose import compose_config
    from trainer_platform.spec import RunSpec

    overrides = [*overrides, "dry_run=true"]
    cfg = compose_config(overrides)
    fmt = (cfg.get("data") or {}).get("format")
    chosen = any(o.split("=", 1)[0].lstrip("+") == "algorithm" for o in overrides)
    wanted = _ALGORITHM_FOR_FORMAT.get(str(fmt))
    if not chosen and wanted and (cfg.get("algorithm") or {}).get("kind") != wanted.replace("grpo", "rl"):
        cfg = compose_config([f"algorithm={wanted}", *overrides])
    return RunSpec.from_config(cfg)


def _inspect(args: argparse.Namespace, out: Console) -> int:
    from pathlib import Path

    from trainer_platform.data.inspect import inspect_source, report_lines
    from trainer_platform.data.lengths import load_tokenizer
    from trainer_platform.prepare import _model_path

    source = Path(args.source).expanduser()
    spec = data_spec([*args.overrides, f"data.train_files=[{source}]", "data.val_files=null"])
    limit = spec.data.max_prompt_length if spec.algorithm.kind == "rl" else spec.data.max_length
    tokenizer = load_tokenizer(_model_path(spec, True))
    split = spec.data.split.train_name if spec.data.split else "train"
    found = inspect_source(spec.data, source, tokenizer, int(limit or 0), split=split, samples=args.samples)
    out.print(Text("\n".join(report_lines(found))), soft_wrap=True)
    return 0


def _prepare(args: argparse.Namespace, out: Console) -> int:
    from trainer_platform.checks import missing_data_hint
    from trainer_platform.data.validate import check_sources
    from trainer_platform.prepare import prepare

    spec = data_spec(list(args.overrides))
    check_sources(spec, False, missing_data_hint(spec))  # the parquet is written here: every source must be here
    prepared = prepare(spec.model_copy(update={"dry_run": False}))
    lines = [f"train  {prepared.train_files[0]}"]
    lines += [f"val    {prepared.val_files[0]}"] if prepared.val_files else []
    report = prepared.data
    if report:
        lines.append(f"hash   {report['hash']}")
        lines.append(
            f"rows   {report['read']} read, {report['bad']} bad (skipped), {report['too_long']} over the length "
            f"limit (dropped), {report['train']} train, {report['val']} val"
        )
        lines += [f"  bad: {e}" for e in report["bad_examples"]]
        lines += [f"  too long: {e}" for e in report["too_long_examples"]]
        lines.append(json.dumps({k: report[k] for k in ("hash", "read", "bad", "too_long", "train", "val")}))
    out.print(Text("\n".join(lines)), soft_wrap=True)
    return 0
