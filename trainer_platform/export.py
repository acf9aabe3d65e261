"""A run's checkpoint -> a Hugging Face model directory, through verl's own model merger (`verl.model_merger`).

verl 0.9.1 writes FSDP checkpoints in two layouts, both under `checkpoints/global_step_N/`:
- the engine trainers (SFT, and our DPO trainer built on them) save the model in the step folder itself;
- the RL trainer (`main_ppo`) saves one folder per role: `actor/` (the policy, exported) and `critic/` (PPO's
  value model).
Either folder holds `fsdp_config.json`, `model_world_size_W_rank_R.pt` shards and `huggingface/` (config,
tokenizer) — what the merger reads. The merger writes bfloat16 safetensors, the config and the tokenizer.

`plan_export` checks everything (run, step, layout, output folder) before anything is written; `export` runs the
merger in a child process into a staging folder beside the output and renames it into place, so a failed export
leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from trainer_platform.errors import SpecError
from trainer_platform.runs import RunDir

EXPORT_DIR = "export"  # default output: RUN/export/step-N
_STEP_DIR = re.compile(r"global_step_(\d+)")
_ROLES = ("actor",)  # the RL trainer's policy folder; the engine trainers save the model in the step folder itself


class ExportError(SpecError):
    """Why a checkpoint cannot be exported (exit code 2)."""


@dataclass(frozen=True)
class ExportPlan:
    run: Path
    step: int
    source: Path  # the folder verl's merger reads (`--local_dir`)
    out: Path

    def command(self, target: Path) -> list[str]:
        """verl's merger, run by this interpreter, writing into `target`."""
        merger = [sys.executable, "-m", "verl.model_merger", "merge", "--backend", "fsdp"]
        return [*merger, "--local_dir", str(self.source), "--target_dir", str(target)]


def checkpoint_steps(checkpoints_dir: Path) -> list[int]:
    """The steps that have a `global_step_N` folder, ascending."""
    if not checkpoints_dir.is_dir():
        return []
    steps = (_STEP_DIR.fullmatch(p.name) for p in checkpoints_dir.iterdir() if p.is_dir())
    return sorted(int(m.group(1)) for m in steps if m)


def merger_source(step_dir: Path) -> Path:
    """The folder of a step's checkpoint that holds the policy's FSDP shards (see the module docstring)."""
    for candidate in (*(step_dir / role for role in _ROLES), step_dir):
        if (candidate / "fsdp_config.json").is_file():
            missing = [] if (candidate / "huggingface" / "config.json").is_file() else ["huggingface/config.json"]
            if not any(candidate.glob("model_world_size_*_rank_0.pt")):
                missing.append("model_world_size_*_rank_0.pt")
            if missing:
                raise ExportError(
                    str(candidate),
                    f"incomplete checkpoint: no {', '.join(missing)}",
                    "export another step (--step N); this one was not written to the end",
                )
            return candidate
    if (step_dir / "actor" / "model").is_dir() or (step_dir / "model").is_dir():
        raise ExportError(
            str(step_dir),
            "is a Megatron checkpoint; this platform trains with FSDP and exports FSDP checkpoints only",
            "run `python -m verl.model_merger merge --backend megatron --local_dir DIR --target_dir OUT` by hand",
        )
    raise ExportError(
        str(step_dir), "holds no FSDP checkpoint (no fsdp_config.json here or in actor/)", "export another step"
    )


def plan_export(run_dir: RunDir, step: int | None = None, out: Path | None = None) -> ExportPlan:
    """Check that `step` (default: the last complete checkpoint) can be exported to `out` (default:
    RUN/export/step-N); raise ExportError saying what is wrong otherwise. Reads only; writes nothing."""
    steps = checkpoint_steps(run_dir.checkpoints_dir)
    if not steps:
        raise ExportError(
            str(run_dir.path),
            "has no checkpoint yet",
            "checkpoints are written every train.save_every steps and at the last step; export when one exists",
        )
    if step is None:
        step = run_dir.last_checkpoint_step()
        if step is None:
            raise ExportError(
                str(run_dir.checkpoints_dir),
                "no complete checkpoint (latest_checkpointed_iteration.txt is missing)",
                f"name one with --step N; folders found for steps {_join(steps)}",
            )
    if step not in steps:
        raise ExportError(f"--step {step}", f"no checkpoint at step {step}", f"checkpoints: steps {_join(steps)}")
    source = merger_source(run_dir.checkpoints_dir / f"global_step_{step}")
    target = (out or run_dir.path / EXPORT_DIR / f"step-{step}").expanduser().absolute()
    if target.exists() and not target.is_dir():
        raise ExportError(str(target), "exists and is not a directory", "pass --out with a new folder")
    if target.is_dir() and any(target.iterdir()):
        raise ExportError(str(target), "exists and is not empty", "pass --out with a new folder, or remove this one")
    return ExportPlan(run=run_dir.path, step=step, source=source, out=target)


def export(plan: ExportPlan) -> Path:
    """Run verl's merger for `plan` into a staging folder, then move it to `plan.out`; returns `plan.out`.
    On failure nothing is left at `plan.out`, and the error carries the end of the merger's output."""
    plan.out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{plan.out.name}.partial-", dir=plan.out.parent))
    try:
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
        res = subprocess.run(plan.command(staging), capture_output=True, text=True, env=env, check=False)
        if res.returncode != 0 or not (staging / "config.json").is_file():
            tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-8:])
            raise ExportError(
                str(plan.source),
                f"verl's model merger failed (exit code {res.returncode}):\n{tail}",
                "check that the checkpoint is complete; rerun with another --step",
            )
        if plan.out.is_dir():
            plan.out.rmdir()  # empty (checked by plan_export)
        staging.rename(plan.out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return plan.out


def _join(steps: list[int]) -> str:
    return ", ".join(map(str, steps))
