"""One torchrun per node of a Slurm allocation for a multi-node torchrun job (verl's SFT trainer, our DPO
trainer): the rendered tp_torchrun_nodes.sh (template: templates/torchrun_nodes.sh.j2) sets MASTER_ADDR (the first
node's Slurm address) and MASTER_PORT (fixed) and starts the job's torchrun line on every node through one
`srun --overlap` step; the rendezvous is hosted on the first node. Pure, like render.py."""

from __future__ import annotations

from launchers.render import render, template_env, with_interpreter
from trainer_platform.job import VerlJob

TORCHRUN_NODES = "tp_torchrun_nodes.sh"
# torchrun's own default rendezvous port
DEFAULT_MASTER_PORT = 29500


def needs_torchrun_nodes(job: VerlJob) -> bool:
    """Whether the job is a torchrun job spanning several nodes."""
    return not job.uses_ray and job.nnodes > 1


def render_torchrun_nodes(
    job: VerlJob, *, run_name: str, master_port: int = DEFAULT_MASTER_PORT, python: str = "python"
) -> dict[str, str]:
    """tp_torchrun_nodes.sh for a multi-node torchrun job, run from the run dir where the job runs (a shared
    filesystem). `python` is the interpreter there."""
    if not needs_torchrun_nodes(job):
        raise ValueError(f"{job.entry_point} on {job.nnodes} node(s) is not a multi-node torchrun job")
    if not 1024 <= master_port <= 65535:
        raise ValueError(f"the rendezvous port must be between 1024 and 65535, got {master_port}")
    job = with_interpreter(job, python)
    text = (
        template_env()
        .get_template("torchrun_nodes.sh.j2")
        .render(run_name=run_name, nnodes=job.nnodes, master_port=master_port, command=job.shell_line())
    )
    return {TORCHRUN_NODES: text}


def render_with_torchrun_nodes(
    job: VerlJob,
    *,
    run_name: str,
    verl_ext: str,
    setup: tuple[str, ...] = (),
    grace_s: float = 10.0,
    python: str = "python",
    master_port: int = DEFAULT_MASTER_PORT,
) -> dict[str, str]:
    """The job-side wrapper (render.render) running tp_torchrun_nodes.sh, which runs the job on every node."""
    files = render(
        job,
        launcher="slurm",
        run_name=run_name,
        verl_ext=verl_ext,
        setup=setup,
        grace_s=grace_s,
        python=python,
        command=f'bash "$here"/{TORCHRUN_NODES}',
    )
    return files | render_torchrun_nodes(job, run_name=run_name, master_port=master_port, python=python)
