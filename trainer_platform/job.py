"""VerlJob: the one description of a verl job that dry runs, golden tests and every launcher share.

A job is relocatable: it names where it runs only through placeholders, `${TP_RUN_DIR}` (the run directory where
the job runs) and `${TP_VERL_EXT}` (the platform's verl/ folder there), plus `${MASTER_ADDR}`/`${MASTER_PORT}` for
multi-node torchrun rendezvous and `${TP_RAY_ADDRESS}` (host:port of the Ray cluster a launcher brought up for a
multi-node Ray job). A shell expands them (launch.sh, a launcher's wrapper script sets them first); a launcher
that runs argv without a shell calls `resolve()`. `files` lists the local inputs (model, data, reward file) a remote
launcher must ship; `resolve()` also maps them to where they were shipped.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

RUN_DIR = "${TP_RUN_DIR}"
VERL_EXT = "${TP_VERL_EXT}"
RAY_ADDRESS = "${TP_RAY_ADDRESS}"
# the variables a job may reference; anything else that looks like ${...} is literal text
PLACEHOLDERS = ("TP_RUN_DIR", "TP_VERL_EXT", "MASTER_ADDR", "MASTER_PORT", "TP_RAY_ADDRESS")
_PLACEHOLDER_RE = re.compile(r"\$\{(" + "|".join(PLACEHOLDERS) + r")\}")


def shell_word(arg: str) -> str:
    """One argument quoted for a POSIX shell, with the known placeholders left for the shell to expand."""
    parts = _PLACEHOLDER_RE.split(arg)
    if len(parts) == 1:
        return shlex.quote(arg)
    # split() alternates literal text and placeholder names: quote the text, keep "${NAME}" double-quoted
    out = [shlex.quote(p) if i % 2 == 0 else f'"${{{p}}}"' for i, p in enumerate(parts) if p or i % 2]
    return "".join(out)


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
    # GPUs each node needs (0: the job runs on CPUs): what a scheduler is asked for
    gpus_per_node: int = 0
    # whether the entry point drives its own Ray cluster (main_ppo) rather than torchrun ranks (SFT, DPO)
    uses_ray: bool = False
    # paths (relative to the run dir) the job writes: metrics file, checkpoint dir, ...
    outputs: Mapping[str, str] = field(default_factory=dict)
    # absolute local paths the job reads (model dir, data files, reward file): what a remote launcher ships
    files: tuple[str, ...] = ()
    # logical resources each node of a Ray cluster brought up for this job declares, e.g. {"CPU": 16, "GPU": 1} on
    # CPU (verl's workers ask for GPUs: the CPU path declares logical ones); empty: Ray counts each node's hardware
    ray_node_resources: Mapping[str, int] = field(default_factory=dict)
    # the diagnostics config (trainer_platform.diagnostics.rules) that the monitor beside the job runs; None = none
    diagnostics: Mapping[str, Any] | None = None
    # folders outside the run dir that the job's processes make and nothing reads once it has ended (the private Ray
    # instance's temp dir, /tmp/tp-ray-*): whoever sees the job end removes them
    scratch_dirs: tuple[str, ...] = ()

    def shell_line(self) -> str:
        """The job as one copy-pasteable shell line: `env K=V ... python -m ...` (placeholders expand)."""
        env_part = [f"{k}={v}" for k, v in sorted(self.env.items())]
        prefix = ["env", *env_part] if env_part else []
        return " ".join(shell_word(a) for a in [*prefix, *self.argv])

    def resolve(self, values: Mapping[str, str], moved: Mapping[str, str] | None = None) -> VerlJob:
        """The job with placeholders replaced by `values` (unknown names stay) and each shipped file's local
        path replaced by where it now lies (`moved`: local path -> path where the job runs)."""

        def sub(text: str) -> str:
            for old, new in (moved or {}).items():
                text = text.replace(old, new)
            return _PLACEHOLDER_RE.sub(lambda m: values.get(m.group(1), m.group(0)), text)

        return replace(
            self,
            argv=tuple(sub(a) for a in self.argv),
            env={k: sub(v) for k, v in self.env.items()},
            files=tuple((moved or {}).get(f, f) for f in self.files),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry_point": self.entry_point,
            "argv": list(self.argv),
            "env": dict(self.env),
            "nnodes": self.nnodes,
            "nprocs_per_node": self.nprocs_per_node,
            "gpus_per_node": self.gpus_per_node,
            "uses_ray": self.uses_ray,
            "outputs": dict(self.outputs),
            "files": list(self.files),
            "ray_node_resources": dict(self.ray_node_resources),
            **({"diagnostics": dict(self.diagnostics)} if self.diagnostics is not None else {}),
            **({"scratch_dirs": list(self.scratch_dirs)} if self.scratch_dirs else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VerlJob:
        return cls(
            entry_point=data["entry_point"],
            argv=tuple(data["argv"]),
            env=dict(data.get("env", {})),
            nnodes=int(data.get("nnodes", 1)),
            nprocs_per_node=int(data.get("nprocs_per_node", 1)),
            gpus_per_node=int(data.get("gpus_per_node", 0)),
            uses_ray=bool(data.get("uses_ray", False)),
            outputs=dict(data.get("outputs", {})),
            files=tuple(data.get("files", ())),
            ray_node_resources={k: int(v) for k, v in data.get("ray_node_resources", {}).items()},
            diagnostics=data.get("diagnostics"),
            scratch_dirs=tuple(data.get("scratch_dirs", ())),
        )
