"""VerlJob: the one description of a verl job that dry runs, golden tests and every launcher share."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class VerlJob:
    """A verl job, ready to run on one node or many.

    argv[0] is the Python interpreter that made the run (as submitit does), or the literal "python" for which a
    launcher substitutes the interpreter of the environment it runs in.
    env holds only non-secret variables; secrets (WANDB_API_KEY, ...) are inherited from the launching
    environment and never written anywhere.
    """

    # which verl entry point this is, e.g. "verl.trainer.main_ppo" (for display and launchers' decisions)
    entry_point: str
    # full command line, argv[0] the interpreter
    argv: tuple[str, ...]
    # extra environment variables for the job's processes (merged over the launcher's environment)
    env: Mapping[str, str] = field(default_factory=dict)
    # number of nodes the job spans
    nnodes: int = 1
    # processes (ranks) per node for torchrun jobs; GPUs per node for Ray jobs
    nprocs_per_node: int = 1
    # whether the entry point drives its own Ray cluster (main_ppo) rather than torchrun ranks (SFT, DPO)
    uses_ray: bool = False
    # paths (relative to the run dir) the job writes: metrics file, checkpoint dir, ...
    outputs: Mapping[str, str] = field(default_factory=dict)

    def shell_line(self) -> str:
        """The job as one copy-pasteable shell line: `env K=V ... python -m ...`."""
        env_part = [f"{k}={v}" for k, v in sorted(self.env.items())]
        prefix = ["env", *env_part] if env_part else []
        return shlex.join([*prefix, *self.argv])

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry_point": self.entry_point,
            "argv": list(self.argv),
            "env": dict(self.env),
            "nnodes": self.nnodes,
            "nprocs_per_node": self.nprocs_per_node,
            "uses_ray": self.uses_ray,
            "outputs": dict(self.outputs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VerlJob:
        return cls(
            entry_point=data["entry_point"],
            argv=tuple(data["argv"]),
            env=dict(data.get("env", {})),
            nnodes=int(data.get("nnodes", 1)),
            nprocs_per_node=int(data.get("nprocs_per_node", 1)),
            uses_ray=bool(data.get("uses_ray", False)),
            outputs=dict(data.get("outputs", {})),
        )
