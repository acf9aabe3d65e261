"""Which of this machine's GPUs each concurrent job of a local sweep gets: disjoint sets, never more jobs at once
than `launcher.max_parallel`. Pure bookkeeping (no processes), so the split is unit-tested without a GPU."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence


class GpuPool:
    """Free GPU ids of this machine and the number of jobs running; a job takes `n` GPUs (the lowest free ids)
    when they are free and fewer than `max_parallel` jobs run, and gives them back when it ends."""

    def __init__(self, gpus: Sequence[str], max_parallel: int | None) -> None:
        self.gpus = list(gpus)
        self.free = list(gpus)
        self.max_parallel = max_parallel
        self.running = 0

    def fits(self, n: int) -> bool:
        """Whether a job needing `n` GPUs (0: CPU only) could ever run here."""
        return n <= len(self.gpus)

    def take(self, n: int) -> tuple[str, ...] | None:
        """`n` free GPU ids for a job that starts now (an empty tuple for a CPU job), or None when it must wait."""
        if self.max_parallel is not None and self.running >= self.max_parallel:
            return None
        if n > len(self.free):
            return None
        self.free.sort(key=self.gpus.index)
        taken, self.free = tuple(self.free[:n]), self.free[n:]
        self.running += 1
        return taken

    def give(self, taken: tuple[str, ...]) -> None:
        """The GPUs of a job that ended."""
        self.running -= 1
        self.free.extend(taken)


def default_max_parallel(gpus: Sequence[str], per_job: Sequence[int]) -> int:
    """How many jobs run at once when launcher.max_parallel is null: as many as the GPUs hold side by side (the
    jobs' largest GPU count decides); one at a time for CPU-only jobs, which would fight over the cores."""
    need = max(per_job, default=0)
    if need == 0:
        return 1
    return max(1, len(gpus) // need)


def machine_gpus(allowed: Sequence[int] | None = None) -> list[str]:
    """The GPU ids jobs may use: `allowed` (launcher.gpus), else CUDA_VISIBLE_DEVICES when set, else every GPU
    nvidia-smi lists (none without it)."""
    if allowed is not None:
        return [str(i) for i in allowed]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True, timeout=20, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]
