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
from typing import Any, cast

from trainer_platform.batch import BatchMath, batch_math
from trainer_platform.checks import missing_files
from trainer_platform.errors import SpecError
from trainer_platform.flags import flag_from, override_values, parse_flag, without_invocation_keys
from trainer_platform.job import VerlJob
from trainer_platform.paths import verl_ext_dir
from trainer_platform.planner import Plan, plan
from trainer_platform.preflight import (
    check_cores,
    check_cpu_settings,
    check_rollout_settings,
    check_runnable,
    explicit_keys,
)
from trainer_platform.prepare import prepare
from trainer_platform.runs import RunDir, new_wandb_run_id, utc_now
from trainer_platform.secrets_env import redact
from trainer_platform.spec import RunSpec, upgrade_saved_config
from trainer_platform.steps import total_steps
from trainer_platform.verl_job import JobInputs, build_job
from trainer_platform.verl_schema import check_job_against_verl


def run_overrides(overrides: list[str]) -> int:
    """`python train.py k=v ...`: compose, validate, plan, prepare, build, record, launch."""
    from trainer_platform.compose import compose_config

    resume_dir = _resume_target(overrides)
    if resume_dir is not None:
        rest = without_invocation_keys(overrides, also=("name", "run_root"))
        return resume_run(resume_dir, rest, dry_run=flag_from(overrides, "dry_run"))
    flag_from(overrides, "dry_run")  # one parser for the flag on every path: a bad value is refused here
    cfg = compose_config(overrides)
    spec = RunSpec.from_config(cfg)
    return _launch(spec, None, overrides)


def resume_run(run_dir: Path | str, overrides: list[str] | None = None, *, dry_run: bool = False) -> int:
    """Continue a run in its own directory from its last checkpoint (verl resume_mode=auto), same W&B run.

    The saved spec.yaml is the starting point; `overrides` (dotted keys, e.g. train.steps=10) refine it. A
    `dry_run` flag among them counts like the keyword. Nothing in the run dir changes before the resumed job is
    validated, and a dry run changes nothing there at all.
    """
    from trainer_platform.runs import NotARunDirError, RunDirError

    overrides = list(overrides or [])
    dry_run = dry_run or flag_from(overrides, "dry_run")
    overrides = without_invocation_keys(overrides)
    try:
        run = RunDir.open(run_dir)
        run.read_status()
    except (NotARunDirError, RunDirError) as exc:
        raise SpecError("resume_dir", str(exc), "pass the directory of an earlier run (runs/<name>)") from None
    cfg = _saved_spec(run, overrides)
    cfg.update(dry_run=dry_run, resume=True, resume_dir=str(run.path))
    spec = RunSpec.from_config(cfg)
    return _launch(spec, run, overrides)


def _saved_spec(run: RunDir, overrides: list[str]) -> dict[str, Any]:
    """A run's spec.yaml with `overrides` applied, as plain data; SpecError naming the file when it is unusable."""
    import yaml
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    hint = "restore spec.yaml from the run's launch.sh/job.json, or start a new run"
    try:
        saved = OmegaConf.load(run.spec_path)
    except FileNotFoundError:
        raise SpecError(str(run.spec_path), "is missing, so the run cannot be resumed", hint) from None
    except (OmegaConfBaseException, yaml.YAMLError, ValueError, UnicodeDecodeError) as exc:
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise SpecError(str(run.spec_path), f"is not valid YAML ({problem})", hint) from None
    if not isinstance(saved, DictConfig):
        raise SpecError(str(run.spec_path), "does not hold a mapping of settings", hint)
    saved = OmegaConf.create(upgrade_saved_config(cast(dict[str, Any], OmegaConf.to_container(saved))))
    try:
        merged = OmegaConf.merge(saved, OmegaConf.from_dotlist([o.lstrip("+") for o in overrides]))
        cfg: Any = OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as exc:
        raise SpecError("overrides", f"cannot apply to the saved spec: {exc}", "use dotted key=value pairs") from None
    return {str(k): v for k, v in cfg.items()}


def _resume_target(overrides: list[str]) -> Path | None:
    values = override_values(overrides)
    if not parse_flag("resume", values.get("resume", "false")):
        return None
    if values.get("resume_dir") not in (None, "", "null"):
        return Path(values["resume_dir"]).expanduser()
    if values.get("name") in (None, "", "null"):
        raise SpecError(
            "resume",
            "resume=true needs the run to continue",
            "add resume_dir=runs/<name> (or name=<name> with the same run_root)",
        )
    return Path(values.get("run_root", "runs")).expanduser() / values["name"]


def _launch(spec: RunSpec, existing: RunDir | None, argv: list[str]) -> int:
    the_plan = plan(spec)
    check_cores(spec, the_plan)
    check_rollout_settings(spec, the_plan, explicit_keys(argv))
    check_cpu_settings(spec, the_plan, explicit_keys(argv))
    batch = batch_math(spec, the_plan)
    launcher = _make_launcher(spec)
    if the_plan.nnodes > 1 and spec.launcher.name == "local" and not spec.dry_run:
        raise SpecError(
            "launcher",
            f"compute={spec.compute.name} spans {the_plan.nnodes} nodes but the local launcher "
            "runs on this machine only",
            "use a multi-node launcher, or dry_run=true to see the command",
        )
    for warning in missing_files(spec):
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    if spec.dry_run:
        return _dry_run(spec, the_plan, batch, existing, argv, launcher)
    run = existing or _allocate(spec)
    preparing = utc_now()
    print(f"trainer_platform: {_summary(spec)}; {the_plan.world_size} x {the_plan.accelerator}", flush=True)
    try:
        job, steps = _prepare_job(spec, the_plan, batch, run.path, existing, argv)
        files = {**_run_files(spec, the_plan, job), **launcher.render(job, run)}
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
        run.archive_metrics()
    print(f"run dir: {run.path}", flush=True)
    run.write_status(phases={"preparing": preparing})  # the console's clock: start-up vs training
    from launchers.submit import submit_and_follow

    return submit_and_follow(launcher, [job], [run], verbose=spec.verbose)


def _make_launcher(spec: RunSpec) -> Any:
    """The launcher of the spec, with its options (conf/launcher/<name>.yaml) validated: SpecError otherwise."""
    from launchers.options import parse_options

    launcher_cls = _launcher_class(spec.launcher.name)
    options = parse_options(launcher_cls.Options, spec.launcher.model_dump())
    return launcher_cls(options=options)


def _allocate(spec: RunSpec) -> RunDir:
    """A fresh run dir name under run_root; SpecError when the filesystem refuses it."""
    root = Path(spec.run_root).expanduser()
    try:
        return RunDir.allocate(root, spec.name or _default_name(spec))
    except (OSError, ValueError) as exc:
        raise SpecError("run_root", f"cannot create a run under {root.absolute()}: {exc}", "check run_root") from None


def _dry_run(
    spec: RunSpec, the_plan: Plan, batch: BatchMath, existing: RunDir | None, argv: list[str], launcher: Any
) -> int:
    """Build and print the job; its files (the launcher's rendered ones too) go to run_root/.dry-runs/, never into
    (or claiming) a run dir."""
    from trainer_platform.runs.dryrun import write_dry_run

    root = Path(spec.run_root).expanduser()
    name = existing.name if existing is not None else (spec.name or _default_name(spec))
    target = existing.path if existing is not None else root.absolute() / name
    job, steps = _prepare_job(spec, the_plan, batch, target, existing, argv)
    files = {**_run_files(spec, the_plan, job), **launcher.render(job, RunDir(target))}
    print(redact(dry_run_report(spec, the_plan, batch, job, steps)))
    what = f"resume {target}" if existing is not None else f"create {target} (or {name}-2, ... when taken)"
    print(f"a real run would {what}; nothing there was written")
    try:
        folder = write_dry_run(root, name, files)
    except OSError as exc:
        raise SpecError("run_root", f"cannot write the dry run's files under {root}: {exc}", "check run_root") from None
    print(f"dry run files: {folder}")
    return 0


def _prepare_job(
    spec: RunSpec, the_plan: Plan, batch: BatchMath, run_path: Path, existing: RunDir | None, argv: list[str]
) -> tuple[VerlJob, int | None]:
    """Prepare model and data, check what needs them, build the job and check it against verl's schema (SpecError
    if verl rejects it). Returns the job and the run's total optimizer steps (None when unknown)."""
    prepared = prepare(spec, materialize=not spec.dry_run)
    check_runnable(spec, prepared.train_rows, the_plan.world_size, explicit_keys(argv))
    inputs = JobInputs(
        model_path=prepared.model_path,
        train_files=prepared.train_files,
        val_files=prepared.val_files,
        run_dir=str(run_path),
        train_rows=prepared.train_rows,
        wandb_mode=resolve_wandb_mode(spec),
        wandb_run_id=_wandb_run_id(spec, existing),
        python=sys.executable,
    )
    job = build_job(spec, the_plan, batch, inputs)
    check_job_against_verl(job, dpo_config_dir=verl_ext_dir() / "tp_dpo_config")
    return job, total_steps(spec, prepared.train_rows, the_plan.world_size)


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
    exported = os.environ.get("WANDB_MODE", "").strip().lower()
    if exported in ("online", "offline", "disabled"):
        return exported  # the user's own choice for this shell wins over our guess
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
    files = {
        "spec.yaml": yaml.safe_dump(spec.to_config(), sort_keys=False),
        "plan.json": json.dumps(plan_data, indent=2),
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
