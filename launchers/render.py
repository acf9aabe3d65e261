"""The render step: a VerlJob + launcher options -> the files that will run where the job runs. Pure: no I/O
beyond reading the templates in launchers/templates/, so dry runs, golden tests and launchers see the same text.

`tp_job.sh` is the job-side wrapper every detached launcher starts: it runs the job beside itself and records the
job's own start and end in job_state.json there (see the template's header).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import replace
from functools import cache
from pathlib import Path

import jinja2

from trainer_platform.job import VerlJob

WRAPPER = "tp_job.sh"
RAY_ENTRY = "tp_ray_entry.sh"
JOB_STATE = "job_state.json"
CANCEL_REQUESTED = "cancel_requested"
_TEMPLATES = Path(__file__).parent / "templates"


def with_interpreter(job: VerlJob, python: str) -> VerlJob:
    """The job with argv[0] (its interpreter, a path on the submitting machine) replaced by the interpreter where
    it runs."""
    return replace(job, argv=(python, *job.argv[1:])) if job.argv else job


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
        )
    )
    return {WRAPPER: wrapper}


def render_ray_entry(job: VerlJob, *, run_name: str, run_dir: str | None, python: str = "python") -> dict[str, str]:
    """tp_ray_entry.sh, the Ray job's entrypoint: `run_dir` is where the run's outputs go on the cluster (a shared
    folder), None for the job's working directory (Ray removes it with the job)."""
    job = with_interpreter(job, python)
    text = (
        template_env()
        .get_template("ray_entry.sh.j2")
        .render(
            run_name=run_name,
            run_dir_expr='"$PWD"' if run_dir is None else shlex.quote(run_dir),
            command=job.shell_line(),
        )
    )
    return {RAY_ENTRY: text}
