"""`trainer-platform diagnose RUN`: the diagnostics rules over a run's metrics (running or finished).

Prints each anomaly with its step, rule, metric and action; exit 0 when no rule fired, 1 when one did."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.text import Text

from trainer_platform.diagnostics import evaluate
from trainer_platform.diagnostics.for_run import config_for_run
from trainer_platform.runs import RunDir

NAME = "diagnose"
HELP = "run the diagnostics rules over a run's metrics; exit 1 when one fired"
ORDER = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir")
    parser.add_argument("--json", action="store_true", help="one JSON object per anomaly, for scripts")


def run(args: argparse.Namespace, out: Console) -> int:
    run_dir = RunDir.open(args.run_dir)
    config = config_for_run(run_dir)
    records = run_dir.read_metrics()
    anomalies = evaluate(records, config)
    if args.json:
        for anomaly in anomalies:
            print(json.dumps(anomaly.to_dict()))
        return 1 if anomalies else 0
    steps = sum(1 for r in records if isinstance(r.get("step"), int))
    reason = run_dir.read_status().extra.get("stop_reason")
    if isinstance(reason, dict):
        out.print(Text(f"stopped by {reason.get('rule')} at step {reason.get('step')}: {reason.get('message')}"))
    for anomaly in anomalies:
        style = "red" if anomaly.action == "stop" else "yellow"
        out.print(Text(anomaly.line(), style=style))
    rules = sum(1 for r in config.rules.values() if r.enabled)
    verdict = f"{len(anomalies)} anomalies" if anomalies else "healthy: no rule fired"
    out.print(Text(f"{verdict} ({rules} rules over {steps} logged steps of {run_dir.path})"))
    return 1 if anomalies else 0
