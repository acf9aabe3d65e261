"""A Ray cluster across a Slurm allocation for a multi-node Ray job (verl's RL trainer): the rendered
tp_ray_cluster.sh (template: templates/ray_cluster.sh.j2) brings the cluster up, runs the job attached to it and
tears it down. Pure, like render.py: the same text for dry runs, golden tests and the Slurm launcher.

What it does and why (learned from NeMo-RL's ray.sub, and from verl's example script's failures):
- the head on the first node, published through a file once its GCS listens (workers wait on that file, not on a
  sleep); the workers in one batched `srun --overlap` step, one task per node (`--nodelist` from `scontrol show
  hostnames`, one element per node: verl#548 quoted the whole list into one);
- the job starts only once every node and GPU has registered, with a deadline, and fails fast naming the nodes that
  did not register or whose step ended;
- verl is handed the cluster's address (`${TP_RAY_ADDRESS}`, verl#3358) and never sizes it (verl_job.py);
- an ENDED file stops every node's Ray (no `ray stop`: it kills every Ray process on a host); a requeued job logs
  into a fresh folder per restart; every port is fixed, below Linux's ephemeral range.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from launchers.render import render, template_env, with_interpreter
from trainer_platform.job import VerlJob, shell_word

RAY_CLUSTER = "tp_ray_cluster.sh"
# where the cluster's ports start: below Linux's ephemeral range (32768-60999) and Ray's default worker range
DEFAULT_PORT_BASE = 24000


@dataclass(frozen=True)
class RayPorts:
    """Every port the cluster's Ray listens on, fixed from one base: the same on every node (each node is its own
    host), never in the kernel's ephemeral range, so a port a raylet probed free is not taken meanwhile."""

    base: int = DEFAULT_PORT_BASE

    def __post_init__(self) -> None:
        if not 1024 <= self.base <= 65535 - 1000:
            raise ValueError(f"the Ray port base must be between 1024 and 64535, got {self.base}")

    @property
    def gcs(self) -> int:
        return self.base

    @property
    def client_server(self) -> int:
        return self.base + 1

    @property
    def node_manager(self) -> int:
        return self.base + 10

    @property
    def object_manager(self) -> int:
        return self.base + 11

    @property
    def runtime_env_agent(self) -> int:
        return self.base + 12

    @property
    def dashboard_agent_grpc(self) -> int:
        return self.base + 13

    @property
    def dashboard_agent_listen(self) -> int:
        return self.base + 14

    @property
    def metrics_export(self) -> int:
        return self.base + 15

    @property
    def node_first(self) -> int:
        return self.node_manager

    @property
    def node_last(self) -> int:
        return self.metrics_export

    @property
    def worker_min(self) -> int:
        return self.base + 100

    @property
    def worker_max(self) -> int:
        return self.base + 999


@dataclass(frozen=True)
class RayClusterSettings:
    """How the cluster is brought up (the Slurm launcher's options)."""

    # ports, fixed from one base
    ports: RayPorts = RayPorts()
    # seconds for every node and GPU to register before the job fails
    register_timeout_s: float = 300.0
    # seconds a node's Ray gets to stop after ENDED before it is killed
    stop_grace_s: float = 15.0
    # starts of a node's Ray before its step fails (Ray gives a raylet 30 s to register: a loaded node can miss it)
    start_attempts: int = 3


def needs_ray_cluster(job: VerlJob) -> bool:
    """Whether the job needs a Ray cluster brought up across its nodes (a one-node Ray job starts its own)."""
    return job.uses_ray and job.nnodes > 1


def resource_flags(resources: dict[str, int]) -> list[str]:
    """`ray start` flags declaring a node's logical resources: CPUs and GPUs by flag, anything else as JSON."""
    flags = []
    if "CPU" in resources:
        flags.append(f"--num-cpus={int(resources['CPU'])}")
    if "GPU" in resources:
        flags.append(f"--num-gpus={int(resources['GPU'])}")
    custom = {k: v for k, v in sorted(resources.items()) if k not in ("CPU", "GPU")}
    if custom:
        flags.append("--resources=" + shlex.quote(json.dumps(custom, separators=(",", ":"))))
    return flags


def render_ray_cluster(
    job: VerlJob, *, run_name: str, settings: RayClusterSettings = RayClusterSettings(), python: str = "python"
) -> dict[str, str]:
    """tp_ray_cluster.sh for a multi-node Ray job, run from the run dir where the job runs (on a shared
    filesystem: every node reads and writes its ray_cluster/ folder). `python` is the interpreter there."""
    if not needs_ray_cluster(job):
        raise ValueError(f"{job.entry_point} on {job.nnodes} node(s) runs without a Ray cluster of ours")
    job = with_interpreter(job, python)
    text = (
        template_env()
        .get_template("ray_cluster.sh.j2")
        .render(
            run_name=run_name,
            python=shell_word(python),
            env=[(name, shell_word(value)) for name, value in sorted(job.env.items())],
            nnodes=job.nnodes,
            gpus=job.nnodes * job.nprocs_per_node,
            ports=settings.ports,
            resource_flags=resource_flags(dict(job.ray_node_resources)),
            register_timeout_s=int(settings.register_timeout_s),
            stop_grace_ticks=max(1, int(settings.stop_grace_s * 10)),
            start_attempts=max(1, settings.start_attempts),
            command=job.shell_line(),
        )
    )
    return {RAY_CLUSTER: text}


def render_with_ray_cluster(
    job: VerlJob,
    *,
    run_name: str,
    verl_ext: str,
    setup: tuple[str, ...] = (),
    grace_s: float = 10.0,
    python: str = "python",
    settings: RayClusterSettings = RayClusterSettings(),
) -> dict[str, str]:
    """The job-side wrapper (render.render) running tp_ray_cluster.sh, which runs the job on the cluster: the
    wrapper still records the job's start and end, its setup lines (a venv's PATH) reach every node through srun."""
    files = render(
        job,
        launcher="slurm",
        run_name=run_name,
        verl_ext=verl_ext,
        setup=setup,
        grace_s=grace_s,
        python=python,
        command=f'bash "$here"/{RAY_CLUSTER}',
    )
    return files | render_ray_cluster(job, run_name=run_name, settings=settings, python=python)
