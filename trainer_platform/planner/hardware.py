"""What this machine has: GPUs (through nvidia-smi, without importing torch), CPU cores, installed rollout engines."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass

ROLLOUT_ENGINES = ("vllm", "sglang")


@dataclass(frozen=True)
class Hardware:
    """The local machine as the planner sees it."""

    # GPU model names, one per device (empty without GPUs)
    gpus: tuple[str, ...]
    # memory per GPU, GiB (0 without GPUs)
    gpu_memory_gib: float
    # usable CPU cores
    cpu_cores: int

    @property
    def has_gpu(self) -> bool:
        return bool(self.gpus)


def detect_hardware() -> Hardware:
    """Probe nvidia-smi (if present) and the CPU count. Never imports torch."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return Hardware(gpus=(), gpu_memory_gib=0.0, cpu_cores=cores)
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return Hardware(gpus=(), gpu_memory_gib=0.0, cpu_cores=cores)
    rows = [line.split(",") for line in out.strip().splitlines() if line.strip()]
    names = tuple(r[0].strip() for r in rows)
    mem = min((float(r[1]) for r in rows), default=0.0) / 1024.0
    return Hardware(gpus=names, gpu_memory_gib=round(mem, 1), cpu_cores=cores)


def installed_rollout_engines() -> tuple[str, ...]:
    """Rollout engines importable here, in order of preference (find_spec: nothing is imported)."""
    return tuple(name for name in ROLLOUT_ENGINES if importlib.util.find_spec(name) is not None)


def accelerator_slug(gpu_name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'h100' (the GPU table's name); unknown names -> their first lower-cased token."""
    from trainer_platform.planner.gpus import gpu_by_device_name

    known_gpu = gpu_by_device_name(gpu_name)
    if known_gpu is not None:
        return known_gpu.slug
    lowered = gpu_name.lower()
    for known in ("h200", "h100", "h800", "a100", "a800", "l40s", "l4", "a10g", "b200", "gb200"):
        if known in lowered:
            return known
    tokens = [t for t in lowered.replace("nvidia", "").split() if t]
    return tokens[0] if tokens else "gpu"
