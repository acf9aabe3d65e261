"""The flow of a run: config -> spec -> plan -> prepare -> job -> run dir -> launch (or dry run).

`run_overrides` serves `python train.py k=v ...`; `resume_run` serves `resume=true` and `trainer-platform resume`.
Bad input raises SpecError before anything is written or launched.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from trainer_platform.batch import BatchMath, batch_math
from trainer_platform.errors import SpecError
from trainer_platform.job import VerlJob
from trainer_platform.paths import verl_ext_dir
from trainer_platform.planner import Plan, plan
from trainer_platform.prepare import prepare
from trainer_platform.runs import RunDir, new_wandb_run_id, utc_now
from trainer_platform.spec import RunSpec
from trainer_platform.verl_job import JobInputs, build_job, total_steps
from trainer_platform.verl_schema import check_job_against_verl

# keys that steer this invocation rather than describe the run: never taken from a saved spec
_INVOCATION_KEYS = ("dry_run", "resume", "resume_dir")


def run_overrides(overrides: list[str]) -> int:
    """`python train.py k=v ...`: compose, validate, plan, prepare, build, record, launch."""
    from trainer_platform.compose import compose_config

    resume_dir = _resume_target(overrides)
    if resume_dir is not None:
        rest = [o for o in overrides if o.split("=", 1)[0].lstrip("+") not in (*_INVOCATION_KEYS, "name")]
        dry = any(o.replace(" ", "") in ("dry_run=true", "dry_run=True") for o in overrides)
        return resume_run(resume_dir, rest, dry_run=dry)
    cfg = compose_config(overrides)
    spec = RunSpec.from_config(cfg)
    return _launch(spec, None, overrides)


def resume_run(run_dir: Path | str, overrides: list[str] | None = None, *, dry_run: bool = False) -> int:
    """Continue a run in its own directory from its last checkpoint (verl resume_mode=auto), same W&B run.

    The saved spec.yaml is the starting point; `overrides` (dotted keys, e.g. train.steps=10) refine it.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from trainer_platform.runs import NotARunDirError

    try:
        run = RunDir.open(run_dir)
    except NotARunDirError as exc:
        raise SpecError("resume_dir", str(exc), "pass the directory of an earlier run (runs/<name>)") from None
    saved = OmegaConf.load(run.spec_path)
    try:
        merged = OmegaConf.merge(saved, OmegaConf.from_dotlist([o.lstrip("+") for o in overrides or []]))
    except OmegaConfBaseException as exc:
        raise SpecError("overrides", f"cannot apply to the saved spec: {exc}", "use dotted key=value pairs") from None
    cfg: Any = OmegaConf.to_container(merged, resolve=True)
    cfg.update(dry_run=dry_run, resume=True, resume_dir=str(run.path))
    spec = RunSpec.from_config(cfg)
    return _launch(spec, run, overrides or [])


def _resume_target(overrides: list[str]) -> Path | None:
    values = dict(o.lstrip("+").split("=", 1) for o in overrides if "=" in o)
    if values.get("resume", "false").lower() != "true":
        return None
    if values.get("resume_dir"):
        return Path(values["resume_dir"]).expanduser()
    if not values.get("name"):
        raise SpecError(
            "resume",
            "resume=true needs the run to continue",
            "add resume_dir=runs/<name> (or name=<name> with the same run_root)",
        )
    return Path(values.get("run_root", "runs")).expanduser() / values["name"]


def _launch(spec: RunSpec, existing: RunDir | None, argv: list[str]) -> int:
    the_plan = plan(spec)
    batch = batch_math(spec, the_plan)
    launcher_cls = _launcher_class(spec.launcher.name)
    if the_plan.nnodes > 1 and spec.launcher.name == "local" and not spec.dry_run:
        raise SpecError(
            "launcher",
            f"compute={spec.compute.name} spans {the_plan.nnodes} nodes but the local launcher "
            "runs on this machine only",
            "use a multi-node launcher, or dry_run=true to see the command",
        )
    run = existing or RunDir.allocate(Path(spec.run_root).expanduser(), spec.name or _default_name(spec))
    preparing = utc_now()
    if not spec.dry_run:
        print(f"trainer_platform: {_summary(spec)}; {the_plan.world_size} x {the_plan.accelerator}", flush=True)
    try:
        job, steps = _prepare_job(spec, the_plan, batch, run, existing)
        files = _run_files(spec, the_plan, job)
        if existing is None:
            wandb_id = job.env.get("WANDB_RUN_ID")
            if wandb_id:
                files["wandb_id.txt"] = wandb_id + "\n"
            run.create(files, argv=["train.py", *argv])
    except BaseException:
        if existing is None:
            run.release()
        raise
    if existing is not None:
        run.update_files(files)
        if not spec.dry_run:
            run.archive_metrics()
    if spec.dry_run:
        run.write_status(run.read_status().state, dry_run=True)
        print(dry_run_report(spec, the_plan, batch, job, steps))
        print(f"run dir: {run.path}")
        return 0
    print(f"run dir: {run.path}", flush=True)
    run.write_status(phases={"preparing": preparing})  # the console's clock: start-up vs training
    from trainer_platform.console import show_while, summary_text

    launcher = launcher_cls()
    handle = launcher.submit(job, run)
    code = show_while(run, lambda: launcher.wait(handle), verbose=spec.verbose)
    print(summary_text(run), flush=True)  # its last line: run dir: PATH
    return code


def _prepare_job(
    spec: RunSpec, the_plan: Plan, batch: BatchMath, run: RunDir, existing: RunDir | None
) -> tuple[VerlJob, int | None]:
    """Prepare model and data, build the job and check it against verl's schema (SpecError if verl rejects it).
    Returns the job and the run's total optimizer steps (None when unknown)."""
    prepared = prepare(spec, materialize=not spec.dry_run)
    inputs = JobInputs(
        model_path=prepared.model_path,
        train_files=prepared.train_files,
        val_files=prepared.val_files,
        run_dir=str(run.path),
        verl_ext_dir=str(verl_ext_dir()),
        train_rows=prepared.train_rows,
        wandb_mode=resolve_wandb_mode(spec),
        wandb_run_id=_wandb_run_id(spec, existing),
        python=sys.executable,
    )
    job = build_job(spec, the_plan, batch, inputs)
    check_job_against_verl(job, dpo_config_dir=verl_ext_dir() / "tp_dpo_config")
    return job, total_steps(spec, prepared.train_rows)


def _wandb_run_id(spec: RunSpec, existing: RunDir | None) -> str | None:
    """The W&B run id: fixed when the run dir is created, reused by every resume."""
    if "wandb" not in spec.logger.backends:
        return None
    return existing.ensure_wandb_run_id() if existing is not None else new_wandb_run_id()


def _launcher_class(name: str) -> Any:
    from launchers.base import UnknownLauncherError, available_launchers, get_launcher_class

    try:
        return get_launcher_class(name)
    except UnknownLauncherError:
        from trainer_platform.errors import choices_hint

        raise SpecError("launcher", f"no launcher named {name!r}", choices_hint(name, available_launchers())) from None


def _default_name(spec: RunSpec) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{spec.algorithm.name}-{spec.model.name}-{spec.data.name}-{stamp}"


def resolve_wandb_mode(spec: RunSpec) -> str:
    """online/offline for the wandb backend: `auto` is offline unless an API key is configured."""
    wandb = spec.logger.wandb
    if wandb is None or wandb.mode != "auto":
        return wandb.mode if wandb else "disabled"
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "online" if "api.wandb.ai" in netrc.read_text() else "offline"
    except OSError:
        return "offline"


def _run_files(spec: RunSpec, the_plan: Plan, job: VerlJob) -> dict[str, str]:
    import yaml

    from trainer_platform.planner.report import plan_to_dict

    plan_data = plan_to_dict(the_plan)
    return {
        "spec.yaml": yaml.safe_dump(spec.to_config(), sort_keys=False),
        "plan.json": json.dumps(plan_data, indent=2),
        "job.json": json.dumps(job.to_dict(), indent=2),
        "launch.sh": launch_script(job),
    }


def launch_script(job: VerlJob) -> str:
    """launch.sh: the exact verl job; running it again resumes from the run's last checkpoint."""
    return (
        "#!/usr/bin/env bash\n"
        "# The exact verl job of this run, as trainer_platform launched it. Running it again resumes from the last\n"
        "# checkpoint in this directory. Secrets (WANDB_API_KEY, ...) come from your environment, never from here.\n"
        "set -euo pipefail\n"
        'cd "$(dirname "$0")"\n'
        f"exec {job.shell_line()}\n"
    )


def _summary(spec: RunSpec) -> str:
    return (
        f"{spec.algorithm.name} on {spec.model.name} with {spec.data.name}, compute={spec.compute.name}, "
        f"launcher={spec.launcher.name}"
    )


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def dry_run_report(spec: RunSpec, the_plan: Plan, batch: BatchMath, job: VerlJob, steps: int | None) -> str:
    """What a dry run prints: spec summary, plan, batch arithmetic and the copy-pasteable command."""
    from trainer_platform.planner.report import plan_text

    algo = spec.algorithm
    params = spec.model.arch.params
    lines = [
        "trainer_platform dry run (nothing launched)",
        f"  algorithm  {algo.name} ({algo.kind}), lr {algo.lr}, epochs {algo.epochs}, steps {steps or 'per epochs'}",
        f"  model      {spec.model.name} ({_count(params)} params)",
        f"  data       {spec.data.name} ({spec.data.format})",
        f"  compute    {spec.compute.name}: {the_plan.nnodes} node(s) x {the_plan.gpus_per_node} "
        f"{the_plan.accelerator}",
        f"  launcher   {spec.launcher.name}; logger {', '.join(spec.logger.backends) or 'run dir only'}",
        "plan:",
        *[f"  - {note}" for note in the_plan.notes],
        plan_text(the_plan),
        "batch arithmetic:",
        *[f"  {line}" for line in batch.lines()],
        "command:",
        job.shell_line(),
    ]
    return "\n".join(lines)
