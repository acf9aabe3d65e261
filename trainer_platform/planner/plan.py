"""plan(spec): resolve `compute=auto`, pick the platform and rollout engine, and settle per-GPU settings.

A Plan says what was decided and why (`notes`, and the fit's reasons), so a dry run can show it. Memory settings
come from the fit check (fit.py: memory model + search); verl_job.py maps them onto verl's keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trainer_platform.errors import SpecError
from trainer_platform.planner.fit import Fit, fit_run
from trainer_platform.planner.hardware import Hardware, accelerator_slug, detect_hardware, installed_rollout_engines
from trainer_platform.spec import RLAlgorithm, RunSpec

# tokens one GPU processes per micro batch when the user leaves micro_batch_size_per_gpu unset
_GPU_TOKENS_PER_MICRO = 16384
# Ray logical CPUs of a local CPU run: verl's actors each reserve one, and with fewer logical CPUs than actors
# the job waits forever (measured on 2 cores: num_cpus=2 hangs); 16 covers every RL role plus workers
_CPU_RAY_CPUS = 16
_VERDICTS = {
    "yes": "fits",
    "tight": "tight: fits only with shorter average sequences",
    "over": "WARNING: above this machine's memory",
}
# rollout memory fraction when the GPU's memory is unknown (verl's examples use 0.6 on 80 GB GPUs)
_DEFAULT_ROLLOUT_FRACTION = 0.6


@dataclass(frozen=True)
class Plan:
    """What the planner decided for a run."""

    # "cpu" (verl through the platform's CPU plugin) or "cuda"
    platform: str
    # accelerator kind, e.g. "h100", or "cpu"
    accelerator: str
    # nodes in the job
    nnodes: int
    # ranks (GPUs, or CPU processes) per node
    gpus_per_node: int
    # memory per GPU, GiB (None on CPU or when unknown)
    gpu_memory_gib: float | None
    # RL rollout engine: vllm | sglang | hf (None for SFT/DPO)
    rollout_engine: str | None
    # tensor-parallel degree of the rollout engine (1 for hf)
    rollout_tp: int
    # samples (SFT/DPO) or responses (RL) per forward/backward on one rank
    micro_batch_size_per_gpu: int
    # why each choice was made, for the dry run and the record
    notes: tuple[str, ...] = field(default_factory=tuple)
    # the memory fit: settings, estimate, reasons (None when the GPU's memory is unknown)
    fit: Fit | None = None
    # Ray logical CPUs for a local RL run (None: Ray counts the machine's cores)
    ray_num_cpus: int | None = None

    @property
    def rollout_memory_fraction(self) -> float:
        return self.fit.settings.rollout_fraction if self.fit else _DEFAULT_ROLLOUT_FRACTION

    @property
    def world_size(self) -> int:
        return self.nnodes * self.gpus_per_node

    @property
    def on_cpu(self) -> bool:
        return self.platform == "cpu"


def plan(spec: RunSpec, hardware: Hardware | None = None, engines: tuple[str, ...] | None = None) -> Plan:
    """Decide the settings the spec leaves open. `hardware`/`engines` default to probing this machine."""
    compute = spec.compute
    notes: list[str] = []
    accelerator = compute.accelerator
    gpus_per_node = compute.gpus_per_node
    memory = compute.gpu_memory_gib
    if accelerator == "auto":
        hw = hardware or detect_hardware()
        if hw.has_gpu:
            accelerator = accelerator_slug(hw.gpus[0])
            gpus_per_node = gpus_per_node or len(hw.gpus)
            memory = memory or hw.gpu_memory_gib
            notes.append(f"compute=auto: found {len(hw.gpus)} x {hw.gpus[0]} ({hw.gpu_memory_gib} GiB)")
        else:
            accelerator = "cpu"
            gpus_per_node = gpus_per_node or 1
            notes.append(f"compute=auto: no GPU found, training on CPU ({hw.cpu_cores} cores) via the CPU plugin")
    platform = "cpu" if accelerator == "cpu" else "cuda"
    if gpus_per_node is None and platform == "cpu":
        gpus_per_node = 1
    if gpus_per_node is None:
        raise SpecError(
            "compute.gpus_per_node",
            f"compute.accelerator={accelerator} names no GPU count, and only compute.accelerator=auto detects it",
            "set compute.gpus_per_node=N (GPUs per node), or compute.accelerator=auto",
        )
    engine, tp = _rollout(spec, platform, gpus_per_node, memory, engines, notes)
    world = gpus_per_node * compute.nodes
    micro = _micro_batch(spec, platform, world, notes)
    fit = fit_run(
        spec,
        on_cpu=platform == "cpu",
        accelerator=accelerator,
        memory_gib=memory,
        world=world,
        gpus_per_node=gpus_per_node,
        engine=engine,
        micro_batch=micro,
    )
    if fit is not None and platform != "cpu":
        tp = fit.settings.rollout_tp if engine in ("vllm", "sglang") else tp
        if not fit.settings.dynamic:
            micro = fit.settings.micro_batch
        notes[:] = [n for n in notes if not n.startswith(("micro batch per GPU", "rollout tensor parallel"))]
        notes += [f"{name}: {value} ({why})" for name, value, why in fit.reasons]
    if fit is not None:
        peak = fit.estimate.peak
        notes.append(
            f"memory per GPU: ~{peak.total_gib:.1f} of {fit.capacity_gib:.1f} GiB at the {peak.name} peak "
            f"({_VERDICTS[fit.verdict]}; estimate)"
        )
    else:
        notes.append("memory: not estimated (GPU memory unknown: set compute.gpu_memory_gib)")
    return Plan(
        platform=platform,
        accelerator=accelerator,
        nnodes=compute.nodes,
        gpus_per_node=gpus_per_node,
        gpu_memory_gib=memory,
        rollout_engine=engine,
        rollout_tp=tp,
        micro_batch_size_per_gpu=micro,
        notes=tuple(notes),
        fit=fit,
        ray_num_cpus=_CPU_RAY_CPUS if platform == "cpu" else None,
    )


def _rollout(
    spec: RunSpec,
    platform: str,
    gpus_per_node: int,
    memory: float | None,
    engines: tuple[str, ...] | None,
    notes: list[str],
) -> tuple[str | None, int]:
    if not isinstance(spec.algorithm, RLAlgorithm):
        return None, 1
    engine: str = spec.compute.rollout_engine
    if engine == "auto":
        found = installed_rollout_engines() if engines is None else engines
        if platform == "cpu":
            engine = "hf"
            notes.append("rollout: hf (transformers) - vLLM and SGLang need a GPU")
        elif found:
            engine = found[0]
            notes.append(f"rollout: {engine} (installed here)")
        else:
            engine = "hf"
            notes.append("rollout: hf (transformers) - no vLLM or SGLang installed; install one for fast rollouts")
    if platform == "cpu" and engine != "hf":
        raise SpecError(
            "compute.rollout_engine",
            f"{engine} needs a GPU but this run is on CPU",
            "use compute.rollout_engine=hf (or auto) on CPU",
        )
    if engine == "hf" or platform == "cpu":
        return engine, 1
    tp = spec.compute.rollout_tp or _rollout_tp(spec, gpus_per_node, memory)
    if gpus_per_node % tp:
        raise SpecError(
            "compute.rollout_tp",
            f"{tp} does not divide the {gpus_per_node} GPUs per node",
            f"use a divisor of {gpus_per_node}",
        )
    if spec.compute.rollout_tp is None:
        notes.append(f"rollout tensor parallel: {tp} (bf16 weights take at most a quarter of each GPU)")
    return engine, tp


def _rollout_tp(spec: RunSpec, gpus_per_node: int, memory: float | None) -> int:
    weights_gib = spec.model.arch.params * 2 / 2**30
    budget = (memory or 80.0) * 0.25
    tp = 1
    while weights_gib / tp > budget and tp < gpus_per_node:
        tp *= 2
    return tp


def _micro_batch(spec: RunSpec, platform: str, world: int, notes: list[str]) -> int:
    algo = spec.algorithm
    if algo.micro_batch_size_per_gpu is not None:
        return algo.micro_batch_size_per_gpu
    if isinstance(algo, RLAlgorithm):
        per_rank = max(1, algo.mini_batch_size * algo.rollout_n // world)
        seq = (spec.data.max_prompt_length or 0) + (spec.data.max_response_length or 0)
    else:
        per_rank = max(1, algo.batch_size // world)
        seq = spec.data.max_length or 1
    cap = per_rank if platform == "cpu" else max(1, _GPU_TOKENS_PER_MICRO // max(seq, 1))
    micro = max(d for d in range(1, per_rank + 1) if per_rank % d == 0 and d <= cap)
    notes.append(f"micro batch per GPU: {micro} (of {per_rank} per rank per update, sequences up to {seq} tokens)")
    return micro
