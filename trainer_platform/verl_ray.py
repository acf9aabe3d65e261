"""Where verl's Ray driver runs: a private instance per single-node run, the launcher's cluster for multi-node runs,
an existing cluster for the ray launcher. Pure, like verl_job.py, which asks it for the job's Ray overrides."""

from __future__ import annotations

import hashlib

from trainer_platform.hydra_values import quote
from trainer_platform.job import RAY_ADDRESS
from trainer_platform.planner import Plan
from trainer_platform.spec import RunSpec


def private_ray_dir(spec: RunSpec, plan: Plan, run_dir: str) -> str | None:
    """The temp dir of the run's private Ray instance (local and ssh single-node runs), None when the job attaches
    to a cluster. Short (Ray's socket paths must fit 107 bytes), one per run dir; removed when the job ends."""
    if spec.launcher.name not in ("local", "ssh") or plan.nnodes > 1:
        return None
    return f"/tmp/tp-ray-{hashlib.sha1(run_dir.encode()).hexdigest()[:10]}"


def ray_overrides(spec: RunSpec, plan: Plan, run_dir: str) -> list[str]:
    """verl's `ray_kwargs` for an RL job: which Ray its driver attaches to or starts, and how it is sized."""
    if spec.launcher.name == "ray":
        # the job runs on an existing cluster: attach to it, never size it (no num_cpus/num_gpus)
        return ["+ray_kwargs.ray_init.address=auto"]
    if plan.nnodes > 1:
        # the launcher brings a Ray cluster up across the allocation and sets TP_RAY_ADDRESS: verl's driver is
        # always handed that address (without one it starts a one-node Ray of its own, verl#3358) and never sizes
        # the cluster it attaches to (Ray refuses num_cpus/num_gpus when connecting)
        return [f"+ray_kwargs.ray_init.address={quote(RAY_ADDRESS)}"]
    ray_dir = private_ray_dir(spec, plan, run_dir)
    if ray_dir is None:
        return []
    # a private Ray instance per run: never attach to a cluster that happens to run on this host
    out = ["+ray_kwargs.ray_init.address=local", f"+ray_kwargs.ray_init._temp_dir={ray_dir}"]
    if plan.on_cpu:
        # verl's actors each reserve a CPU: more logical CPUs than cores, or the job waits forever; the dashboard
        # only costs start-up time on a private, short-lived instance
        out += [
            f"ray_kwargs.ray_init.num_cpus={plan.ray_num_cpus}",
            f"+ray_kwargs.ray_init.num_gpus={plan.world_size}",
            "+ray_kwargs.ray_init.include_dashboard=False",
        ]
    return out


def ray_node_resources(plan: Plan) -> dict[str, int]:
    """What each node of a Ray cluster brought up for the job declares: on CPU, the logical CPUs a private
    instance would get and one logical GPU per rank (verl's workers ask for GPUs); on GPUs Ray counts them."""
    if not plan.on_cpu or plan.ray_num_cpus is None:
        return {}
    return {"CPU": plan.ray_num_cpus, "GPU": plan.gpus_per_node}
