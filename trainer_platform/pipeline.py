"""The flow of a run: config -> spec -> plan -> prepare -> job -> run dir -> submit a batch -> follow (or dry run).

One path for everything: `run_overrides` (`python train.py k=v ...`) and `resume_run` (`resume=true`,
`trainer-platform resume`) hand one request to `run_batch`; a sweep (`-m`, trainer_platform/sweep/) hands it all of
its runs at once, so the launcher gets them as one batch (one Slurm array). Bad input raises SpecError before
anything is written or launched, and a batch whose preparation fails anywhere leaves none of its runs behind.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from trainer_platform.batch import BatchMath, batch_math
from trainer_platform.checks import missing_files
from trainer_platform.dry_run_report import dry_run_report, run_summary
from trainer_platform.errors import SpecError
from trainer_platform.flags import flag_from, without_invocation_keys
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
from trainer_platform.resume import resume_target, saved_spec
from trainer_platform.run_files import data_files, run_files
from trainer_platform.runs import RunDir, new_wandb_run_id, utc_now
from trainer_platform.runs.create import NewRun
from trainer_platform.secrets_env import redact
from trainer_platform.spec import RunSpec
from trainer_platform.steps import total_steps
from trainer_platform.verl_job import JobInputs, build_job
from trainer_platform.verl_schema import VerlSchema
from trainer_platform.wandb_mode import resolve_wandb_mode


@dataclass(frozen=True)
class RunRequest:
    """One run to prepare: its spec, the overrides that made it (recorded in record.json; the keys a user set
    explicitly) and where it goes: an existing run (resume), or a new one named `name` under `root`."""

    spec: RunSpec
    argv: list[str]
    existing: RunDir | None = None
    # folder of the new run dir; None = the spec's run_root
    root: Path | None = None
    # the new run dir's name; None = the spec's name, else "<algorithm>-<model>-<data>-<UTC stamp>"
    name: str | None = None

    @property
    def run_root(self) -> Path:
        return (self.root or Path(self.spec.run_root)).expanduser()

    @property
    def run_name(self) -> str:
        if self.existing is not None:
            return self.existing.name
        return self.name or self.spec.name or _default_name(self.spec)


@dataclass
class PreparedRun:
    """A run whose job is built and whose files are ready, its run dir allocated (not yet created)."""

    request: RunRequest
    plan: Plan
    job: VerlJob
    run: RunDir
    files: dict[str, str]
    # when preparation began (the console's clock: start-up vs training)
    preparing: str
    created: bool = field(default=False)


def run_overrides(overrides: list[str]) -> int:
    """`python train.py k=v ...`: compose, validate, plan, prepare, build, record, launch."""
    from trainer_platform.compose import compose_config

    resume_dir = resume_target(overrides)
    if resume_dir is not None:
        rest = without_invocation_keys(overrides, also=("name", "run_root"))
        return resume_run(resume_dir, rest, dry_run=flag_from(overrides, "dry_run"))
    flag_from(overrides, "dry_run")  # one parser for the flag on every path: a bad value is refused here
    spec = RunSpec.from_config(compose_config(overrides))
    return _first_failure(run_batch([RunRequest(spec, list(overrides))]))


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
    cfg = saved_spec(run, overrides)
    cfg.update(dry_run=dry_run, resume=True, resume_dir=str(run.path))
    spec = RunSpec.from_config(cfg)
    return _first_failure(run_batch([RunRequest(spec, overrides, existing=run)]))


def run_batch(
    requests: Sequence[RunRequest], *, on_created: Callable[[list[PreparedRun]], None] | None = None
) -> list[int]:
    """Plan and check every request, prepare each (job, files, an allocated run dir), create all run dirs, then
    hand every job to ONE `launcher.submit` and follow them (launcher.wait) or return (detached). Returns each
    run's exit code, in order. A dry run prints its job instead (0). `on_created` sees the created runs before
    submit (a sweep writes its manifest there). All requests share the first one's launcher."""
    if not requests:
        return []
    launcher = make_launcher(requests[0].spec)
    # verl's config schema, built once for the whole batch: each job's check costs only its own overrides
    schema = VerlSchema(dpo_config_dir=verl_ext_dir() / "tp_dpo_config")
    checked = [(request, *_check(request)) for request in requests]
    codes: dict[int, int] = {}
    for i, (request, the_plan, batch) in enumerate(checked):
        if request.spec.dry_run:
            codes[i] = _dry_run(request, the_plan, batch, launcher, schema)
    real = [(i, item) for i, item in enumerate(checked) if i not in codes]
    if not real:
        return [codes[i] for i in range(len(requests))]
    prepared = _prepare_all([item for _, item in real], launcher, schema)
    if on_created is not None:
        try:
            on_created(prepared)
        except BaseException:
            _undo(prepared)
            raise
    for run in prepared:
        print(f"run dir: {run.run.path}", flush=True)
        if run.request.existing is not None:  # a new run's status.json got its phases when it was created
            run.run.write_status(phases={"preparing": run.preparing})
    from launchers.submit import submit_and_follow_each

    verbose = any(r.request.spec.verbose for r in prepared)
    try:
        results = submit_and_follow_each(
            launcher, [r.job for r in prepared], [r.run for r in prepared], verbose=verbose
        )
    except BaseException:
        # refused before reaching its launcher (an SSH login that failed, a scheduler that is down): a run that
        # got no handle never ran, so it leaves no pending run dir behind
        _undo([r for r in prepared if r.run.load_handle() is None])
        raise
    codes.update({i: code for (i, _), code in zip(real, results, strict=True)})
    return [codes[i] for i in range(len(requests))]


def _first_failure(codes: list[int]) -> int:
    return next((c for c in codes if c != 0), 0)


def _check(request: RunRequest) -> tuple[Plan, BatchMath]:
    """Plan the run and check it can run where it is going (SpecError otherwise); writes nothing."""
    spec = request.spec
    the_plan = plan(spec)
    check_cores(spec, the_plan)
    check_rollout_settings(spec, the_plan, explicit_keys(request.argv))
    check_cpu_settings(spec, the_plan, explicit_keys(request.argv))
    batch = batch_math(spec, the_plan)
    if the_plan.nnodes > 1 and spec.launcher.name == "local" and not spec.dry_run:
        raise SpecError(
            "launcher",
            f"compute={spec.compute.name} spans {the_plan.nnodes} nodes but the local launcher "
            "runs on this machine only",
            "use a multi-node launcher, or dry_run=true to see the command",
        )
    for warning in missing_files(spec):
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    return the_plan, batch


def _prepare_all(
    checked: list[tuple[RunRequest, Plan, BatchMath]], launcher: Any, schema: VerlSchema
) -> list[PreparedRun]:
    """Prepare every run, then create every new run dir: all of them, or (on any failure) none."""
    prepared: list[PreparedRun] = []
    try:
        for request, the_plan, batch in checked:
            prepared.append(_prepare(request, the_plan, batch, launcher, schema))
        new = [run for run in prepared if run.request.existing is None]
        RunDir.create_all([_new_run(run) for run in new])  # all of them, in one pass, or none
        for run in new:
            run.created = True
    except BaseException:
        _undo(prepared)
        raise
    for run in prepared:
        if run.request.existing is not None:
            run.run.update_files(run.files)
            run.run.archive_metrics()
    return prepared


def _new_run(run: PreparedRun) -> NewRun:
    wandb_id = run.job.env.get("WANDB_RUN_ID")
    files = {**run.files, **({"wandb_id.txt": wandb_id + "\n"} if wandb_id else {})}
    return NewRun(run.run, files, ["train.py", *run.request.argv], {"phases": {"preparing": run.preparing}})


def _undo(prepared: list[PreparedRun]) -> None:
    """Release the names of runs not created yet and remove the ones created by this batch (nothing launched)."""
    for run in prepared:
        if run.request.existing is not None:
            continue
        if run.created:
            shutil.rmtree(run.run.path, ignore_errors=True)
        else:
            run.run.release()


def _prepare(request: RunRequest, the_plan: Plan, batch: BatchMath, launcher: Any, schema: VerlSchema) -> PreparedRun:
    spec = request.spec
    run = request.existing or _allocate(request)
    preparing = utc_now()
    print(f"trainer_platform: {run_summary(spec)}; {the_plan.world_size} x {the_plan.accelerator}", flush=True)
    try:
        job, _, data_report = _prepare_job(request, the_plan, batch, run.path, schema)
        files = {**run_files(spec, the_plan, job), **data_files(data_report), **launcher.render(job, run)}
    except BaseException:
        if request.existing is None:
            run.release()
        raise
    return PreparedRun(request, the_plan, job, run, files, preparing)


def make_launcher(spec: RunSpec) -> Any:
    """The launcher of the spec, with its options (conf/launcher/<name>.yaml) validated: SpecError otherwise."""
    from launchers.options import parse_options

    launcher_cls = _launcher_class(spec.launcher.name)
    options = parse_options(launcher_cls.Options, spec.launcher.model_dump())
    return launcher_cls(options=options)


def _allocate(request: RunRequest) -> RunDir:
    """A fresh run dir name under the request's root; SpecError when the filesystem refuses it."""
    root = request.run_root
    try:
        return RunDir.allocate(root, request.run_name)
    except (OSError, ValueError) as exc:
        raise SpecError("run_root", f"cannot create a run under {root.absolute()}: {exc}", "check run_root") from None


def _dry_run(request: RunRequest, the_plan: Plan, batch: BatchMath, launcher: Any, schema: VerlSchema) -> int:
    """Build and print the job; its files (the launcher's rendered ones too) go to run_root/.dry-runs/, never into
    (or claiming) a run dir."""
    from trainer_platform.runs.dryrun import write_dry_run

    spec, existing = request.spec, request.existing
    root = request.run_root
    name = request.run_name
    target = existing.path if existing is not None else root.absolute() / name
    job, steps, data_report = _prepare_job(request, the_plan, batch, target, schema)
    files = {**run_files(spec, the_plan, job), **data_files(data_report), **launcher.render(job, RunDir(target))}
    print(redact(dry_run_report(spec, the_plan, batch, job, steps, data_report)))
    what = f"resume {target}" if existing is not None else f"create {target} (or {name}-2, ... when taken)"
    print(f"a real run would {what}; nothing there was written")
    try:
        folder = write_dry_run(root, name, files)
    except OSError as exc:
        raise SpecError("run_root", f"cannot write the dry run's files under {root}: {exc}", "check run_root") from None
    print(f"dry run files: {folder}")
    return 0


def _prepare_job(
    request: RunRequest, the_plan: Plan, batch: BatchMath, run_path: Path, schema: VerlSchema
) -> tuple[VerlJob, int | None, dict[str, Any]]:
    """Prepare model and data, check what needs them, build the job and check it against verl's schema (SpecError
    if verl rejects it). Returns the job, the run's total optimizer steps (None when unknown) and the data
    preparation's report (content hash, row counts; empty for built-in data)."""
    spec = request.spec
    prepared = prepare(spec, materialize=not spec.dry_run)
    check_runnable(spec, prepared.train_rows, the_plan.world_size, explicit_keys(request.argv))
    inputs = JobInputs(
        model_path=prepared.model_path,
        train_files=prepared.train_files,
        val_files=prepared.val_files,
        run_dir=str(run_path),
        train_rows=prepared.train_rows,
        wandb_mode=resolve_wandb_mode(spec),
        wandb_run_id=_wandb_run_id(spec, request.existing),
        python=sys.executable,
    )
    job = replace(build_job(spec, the_plan, batch, inputs), diagnostics=monitor_settings(spec))
    schema.check(job)
    return job, total_steps(spec, prepared.train_rows, the_plan.world_size), prepared.data


def monitor_settings(spec: RunSpec) -> dict[str, Any] | None:
    """The diagnostics config the monitor beside the job runs (None when diagnostics are off)."""
    from trainer_platform.diagnostics import config_from_dict

    config = config_from_dict(spec.diagnostics)
    if not config.enabled:
        return None
    settings = config.to_dict()
    wandb = spec.logger.wandb
    if "wandb" in spec.logger.backends and wandb is not None:  # the monitor's alerts go to the run's project
        settings["wandb"] = {
            "project": wandb.project,
            "entity": wandb.entity,
            "group": wandb.group,
            "mode": resolve_wandb_mode(spec),
            "name": spec.name,
        }
    return settings


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
