"""The render step: a VerlJob + launcher options -> the files that will run where the job runs. Pure: no I/O
beyond reading the templates in launchers/templates/, so dry runs, golden tests and launchers see the same text.

`tp_job.sh` is the job-side wrapper every detached launcher starts: it runs the job beside itself and records the
job's own start and end in job_state.json there (see the template's header). The Slurm batch script is submitit's
own (`_make_sbatch_string`, pure), from the settings `sbatch_parameters` gives it.

A job with diagnostics (`VerlJob.diagnostics`) also gets the monitor that runs beside it: `monitor_files` ships its
modules (standard library only) as plain files next to the wrapper, because a remote host has the platform's verl/
folder but not necessarily the platform itself, and the wrapper starts it.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from launchers import logsync
from launchers.logsync import JOB_STATE as JOB_STATE  # where the job records itself (slurm, ssh)
from trainer_platform.job import VerlJob

WRAPPER = "tp_job.sh"
RAY_ENTRY = "tp_ray_entry.sh"
SBATCH = "tp_sbatch.sh"
MONITOR = "tp_monitor.py"
MONITOR_CONFIG = "tp_diagnostics.json"
LOGSYNC = "tp_logsync.py"
CANCEL_REQUESTED = "cancel_requested"
# the sbatch script of a dry run with launcher.time=null: the limit is read from Slurm only when the job is submitted
TIME_FROM_PARTITION = (
    "# --time: launcher.time=null, the partition's limit (its DefaultTime, else its MaxTime; 0 for UNLIMITED),"
    " read from Slurm and written here at submit"
)
_TEMPLATES = Path(__file__).parent / "templates"


def with_interpreter(job: VerlJob, python: str) -> VerlJob:
    """The job with argv[0] (its interpreter, a path on the submitting machine) replaced by the interpreter where
    it runs."""
    return replace(job, argv=(python, *job.argv[1:])) if job.argv else job


def monitor_files(job: VerlJob) -> dict[str, str]:
    """The diagnostics monitor and its config, as files to put beside the job's wrapper; {} without diagnostics."""
    if job.diagnostics is None:
        return {}
    from trainer_platform.diagnostics import monitor, rules
    from trainer_platform.runs import metrics

    sources = {MONITOR: monitor, "tp_diag_rules.py": rules, "tp_diag_metrics.py": metrics}
    files = {name: Path(str(module.__file__)).read_text() for name, module in sources.items()}
    files[MONITOR_CONFIG] = json.dumps(dict(job.diagnostics), indent=2) + "\n"
    return files


@cache
def template_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # shell scripts, not HTML: every value is shell-quoted by the template
        # bash's ${#array[@]} would open a Jinja comment
        comment_start_string="<#--",
        comment_end_string="--#>",
    )
    env.filters["shell"] = shlex.quote
    return env


def render(
    job: VerlJob,
    *,
    launcher: str,
    run_name: str,
    verl_ext: str,
    setup: Sequence[str] = (),
    grace_s: float = 10.0,
    python: str = "python",
    command: str | None = None,
) -> dict[str, str]:
    """Every file the launcher runs, by name relative to the run dir where the job runs: `job` with its shipped
    files already mapped to where they lie, `verl_ext` the platform's verl/ folder there, `setup` the
    launcher.setup shell lines run before the job, `grace_s` between SIGTERM and SIGKILL on cancel, `python` the
    interpreter there (the job's argv[0] "python"). `command` is shell text the wrapper runs instead of the job's
    own line: a rendered script beside it that runs the job itself (ray_cluster.py)."""
    job = with_interpreter(job, python)
    wrapper = (
        template_env()
        .get_template("job.sh.j2")
        .render(
            launcher=launcher,
            run_name=run_name,
            # relative: to this run dir where the job runs (a remote launcher ships verl/ beside its runs)
            verl_ext_expr=shlex.quote(verl_ext) if verl_ext.startswith("/") else '"$here"/' + shlex.quote(verl_ext),
            setup=[line.strip() for line in setup if line.strip()],
            grace_ticks=max(1, int(grace_s * 10)),
            command=job.shell_line() if command is None else command,
            monitor=job.diagnostics is not None,
            python=python,
            scratch_dirs=job.scratch_dirs,
        )
    )
    return {WRAPPER: wrapper, **monitor_files(job)}


def render_ray_entry(
    job: VerlJob, *, run_name: str, run_dir: str | None, sync_back: bool, python: str = "python"
) -> dict[str, str]:
    """tp_ray_entry.sh, the Ray job's entrypoint (and what it starts beside the job): `run_dir` is where the run's
    outputs go on the cluster (a shared folder), None for the job's working directory (Ray removes it with the
    job); `sync_back` when that is not the local run dir, so the run's files come back through the job's output
    (launchers/logsync.py, shipped as tp_logsync.py)."""
    job = with_interpreter(job, python)
    text = (
        template_env()
        .get_template("ray_entry.sh.j2")
        .render(
            run_name=run_name,
            run_dir_expr='"$work"' if run_dir is None else shlex.quote(run_dir),
            command=job.shell_line(),
            monitor=job.diagnostics is not None,
            sync_back=sync_back,
            python=python,
        )
    )
    files = {RAY_ENTRY: text, **monitor_files(job)}
    if sync_back:
        files[LOGSYNC] = Path(str(logsync.__file__)).read_text()
    return files


def sbatch_parameters(
    *,
    job_name: str,
    nnodes: int,
    gpus_per_node: int,
    partition: str | None = None,
    account: str | None = None,
    qos: str | None = None,
    time_min: int | None = None,
    mem: str | None = None,
    cpus_per_task: int | None = None,
    constraint: str | None = None,
    exclude: str | None = None,
    array_parallelism: int | None = None,
    extra: Mapping[str, str | bool] | None = None,
    setup: Sequence[str] = (),
    signal_delay_s: int = 90,
) -> dict[str, Any]:
    """submitit's Slurm parameters for a job: the batch script runs submitit's runner itself (no srun step, so a
    multi-node job script can start its own steps), USR2 reaches that runner (`B:`) `signal_delay_s` before the
    time limit so it requeues the job, and the job is requeueable (preemption, `scontrol requeue`). `setup` (venv
    activation, module load) runs in the batch script before the runner, and a failing line fails the job.
    `time_min` is the resolved limit (launchers/slurm_time.py: 0 is no limit); None, for a dry run only, leaves the
    --time line out (submitit would write its own 5 minutes) and `render_sbatch` says where the limit will come from.
    """
    params: dict[str, Any] = {
        "job_name": job_name,
        "nodes": nnodes,
        "use_srun": False,
        "stderr_to_stdout": True,
        "signal_delay_s": signal_delay_s,
        "wckey": None,  # submitit's default wckey is refused where the cluster enforces wckeys
        "time": time_min,
        "additional_parameters": {"requeue": True, "signal": f"B:USR2@{signal_delay_s}", **(extra or {})},
    }
    lines = [line.strip() for line in setup if line.strip()]
    if lines:
        params["setup"] = ["set -e", *lines, "set +e"]
    if mem is not None:  # submitit converts its own `mem` from GB: Slurm's format goes through as-is
        params["additional_parameters"]["mem"] = mem
    optional = {
        "partition": partition,
        "account": account,
        "qos": qos,
        "cpus_per_task": cpus_per_task,
        "constraint": constraint,
        "exclude": exclude,
        "array_parallelism": array_parallelism,
        "gpus_per_node": gpus_per_node or None,
    }
    params.update({k: v for k, v in optional.items() if v is not None})
    return params


def runner_command(python: str, code_root: str, folder: str) -> str:
    """The batch script's command: submitit's runner for the jobs in `folder`, with the platform's code (the
    submitting checkout, `code_root`) importable; exec'd, so the batch shell's USR2 reaches submitit's handler."""
    return (
        f"exec env PYTHONPATH={shlex.quote(code_root)}${{PYTHONPATH:+:$PYTHONPATH}} "
        f"{shlex.quote(python)} -u -m submitit.core._submit {shlex.quote(folder)}"
    )


def render_sbatch(params: Mapping[str, Any], *, folder: str, command: str, array_size: int | None = None) -> str:
    """The sbatch script submitit submits for `params` (one job, or an array of `array_size`), as text."""
    from submitit.slurm.slurm import _make_sbatch_string

    text = str(_make_sbatch_string(command=command, folder=folder, map_count=array_size, **params))
    if params.get("time") is None:
        text = text.replace("# Parameters\n", f"# Parameters\n{TIME_FROM_PARTITION}\n", 1)
    return text
