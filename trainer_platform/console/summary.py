"""`summary_text`: what a finished run did, from its run directory alone.

Final status, steps, wall time (start-up vs training, from the phase times in status.json), first -> last and
best of the key metrics, the last checkpoint, the warnings with their counts, and the commands to run next.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from trainer_platform.console.keys import KeyMetric, fmt, fmt_duration, key_metrics
from trainer_platform.console.logscan import LogScan, clean
from trainer_platform.console.view import parse_time, run_facts
from trainer_platform.runs import SUCCEEDED, RunDir, Status

# warnings listed by name in the summary, the most frequent first
SUMMARY_WARNINGS = 5
_ERROR = re.compile(r"\b\w*(Error|Exception)\b")


def summary_text(run_dir: RunDir) -> str:
    """The end-of-run summary of `run_dir` (several lines, the last one `run dir: PATH`)."""
    status = run_dir.read_status()
    kind, total, _ = run_facts(run_dir)
    records = run_dir.read_metrics()
    steps = [r["step"] for r in records if isinstance(r.get("step"), int) and r["step"] >= 1]
    last = max(steps) if steps else None
    done = f"{last if last is not None else 0}{f'/{total}' if total else ''} steps"
    lines = [f"run {status.state}: {done}, {_wall_time(status)}"]
    if status.state != SUCCEEDED and status.exit_code is not None:
        lines[0] += f", exit code {status.exit_code}"
    reason = status.extra.get("stop_reason")
    if isinstance(reason, Mapping):
        lines.append(
            f"stopped by diagnostics: {reason.get('rule')} at step {reason.get('step')}: {reason.get('message')}"
        )
    lines += metric_lines(key_metrics(kind), records)
    ckpt = run_dir.last_checkpoint_step()
    ckpt_dir = f"{run_dir.checkpoints_location()}/global_step_{ckpt}"
    lines.append(f"last checkpoint: step {ckpt} ({ckpt_dir})" if ckpt is not None else "last checkpoint: none")
    scan = LogScan()
    log = list(run_dir.iter_log())
    scan.feed(log)
    lines += warning_lines(scan)
    if status.state != SUCCEEDED:
        error = _last_error(log)
        if error:
            lines.append(f"error: {error}")
    lines += next_commands(run_dir, status, ckpt, total)
    lines.append(f"run dir: {run_dir.path}")
    return "\n".join(lines)


def _wall_time(status: Status) -> str:
    recorded = status.extra.get("phases")
    phases: Mapping[str, Any] = recorded if isinstance(recorded, Mapping) else {}
    begin = parse_time(phases.get("preparing")) or parse_time(status.started) or parse_time(status.created)
    end = parse_time(status.finished)
    if begin is None or end is None:
        return "wall time unknown"
    text = f"wall time {fmt_duration((end - begin).total_seconds())}"
    training = parse_time(phases.get("training"))
    if training is not None:
        startup, train = (training - begin).total_seconds(), (end - training).total_seconds()
        text += f" (start-up {fmt_duration(startup)}, training {fmt_duration(train)})"
    return text


def metric_lines(metrics: Sequence[KeyMetric], records: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per key metric that was logged: first -> last, and the best value with its step where one is."""
    lines = []
    width = max((len(m.label) for m in metrics), default=0)
    for metric in metrics:
        series = [(r["step"], v) for r in records if (v := metric.value(r.get("data", {}))) is not None and "step" in r]
        if not series:
            continue
        text = f"  {metric.label:<{width}}  {fmt(series[0][1])} -> {fmt(series[-1][1])}"
        if metric.better is not None and len(series) > 1:
            pick = max if metric.better == "max" else min
            step, value = pick(series, key=lambda sv: sv[1])
            text += f"  (best {fmt(value)} at step {step})"
        lines.append(text)
    return lines


def warning_lines(scan: LogScan) -> list[str]:
    """The warnings of train.log, each once with its count, the most frequent first."""
    if not scan.warnings:
        return []
    common = scan.warnings.most_common(SUMMARY_WARNINGS)
    total = sum(scan.warnings.values())
    lines = [f"warnings: {len(scan.warnings)} distinct, {total} in all (full text in train.log)"]
    lines += [f"  x{n} {msg[:110]}" for msg, n in common]
    if len(scan.warnings) > len(common):
        lines.append(f"  ... and {len(scan.warnings) - len(common)} more")
    return lines


def _last_error(log: Sequence[str]) -> str | None:
    for line in reversed(log):
        text = clean(line)
        if _ERROR.search(text) and not text.startswith("Traceback"):
            return text[:200]
    return None


def next_commands(run_dir: RunDir, status: Status, ckpt: int | None, total: int | None) -> list[str]:
    """What to run next: see the log (when it failed), resume, export, W&B sync (when it logged offline)."""
    path = run_dir.path
    more = f" train.steps={2 * total}" if total and status.state == SUCCEEDED else ""
    cmds: list[tuple[str, str]] = []
    if status.state != SUCCEEDED:
        cmds.append(("log", f"trainer-platform logs {path}"))
    if ckpt is not None or status.state != SUCCEEDED:
        cmds.append(("resume", f"trainer-platform resume {path}{more}"))
    if ckpt is not None:
        cmds.append(("export", f"trainer-platform export {path}"))
    offline = sorted(run_dir.wandb_dir.glob("offline-run-*"))
    if offline:
        cmds.append(("W&B sync", "wandb sync " + " ".join(str(p) for p in offline)))
    if not cmds:
        return []
    width = max(len(name) for name, _ in cmds)
    return ["next:", *[f"  {name + ':':<{width + 1}} {cmd}" for name, cmd in cmds]]
