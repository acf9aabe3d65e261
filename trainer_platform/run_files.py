"""The files a run directory starts with: spec.yaml, plan.json, job.json, launch.sh and the lineage of a surgery."""

from __future__ import annotations

import json
from typing import Any

from trainer_platform.job import VerlJob
from trainer_platform.paths import verl_ext_dir
from trainer_platform.planner import Plan
from trainer_platform.secrets_env import redact
from trainer_platform.spec import RunSpec


def run_files(spec: RunSpec, the_plan: Plan, job: VerlJob) -> dict[str, str]:
    """The run's own record files by name (secrets redacted)."""
    import yaml

    from trainer_platform.planner.report import plan_to_dict

    # libyaml's emitter when PyYAML has it: the same text as safe_dump's, ~4x faster (a sweep writes one per run)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    files = {
        "spec.yaml": yaml.dump(spec.to_config(), Dumper=dumper, sort_keys=False),
        "plan.json": json.dumps(plan_to_dict(the_plan), indent=2),
        "job.json": json.dumps(job.to_dict(), indent=2),
        "launch.sh": launch_script(job),
        **_lineage_files(spec),
    }
    return {name: redact(text) for name, text in files.items()}


def _lineage_files(spec: RunSpec) -> dict[str, str]:
    """surgery.json (+ a copy of lineage.json) when the run trains a surgery's output."""
    if not spec.surgery.enabled:
        return {}
    from trainer_platform.prepare import base_model_path
    from trainer_platform.surgery.prepare import lineage_files

    return lineage_files(spec.surgery, base_model_path(spec, materialize=False))


def launch_script(job: VerlJob) -> str:
    """launch.sh: the exact verl job; running it again resumes from the run's last checkpoint."""
    return (
        "#!/usr/bin/env bash\n"
        "# The exact verl job of this run, as trainer_platform launched it. Running it again resumes from the last\n"
        "# checkpoint in this directory. Secrets (WANDB_API_KEY, ...) come from your environment, never from here.\n"
        "set -euo pipefail\n"
        'cd "$(dirname "$0")"\n'
        "# where the job's placeholders point: this run dir, and the platform's verl/ folder\n"
        'export TP_RUN_DIR="$PWD"\n'
        f'export TP_VERL_EXT="${{TP_VERL_EXT:-{verl_ext_dir()}}}"\n'
        f"exec {job.shell_line()}\n"
    )


def data_files(report: dict[str, Any]) -> dict[str, str]:
    """data.json: the prepared data's content hash and row counts (read, bad, too long, train, val); none for
    built-in data."""
    return {"data.json": json.dumps(report, indent=2)} if report else {}
