"""Model sources: turn a step's source string into an HF directory on this machine.

`@model` / `@prev`, an HF directory, a verl checkpoint (`global_step_N`, FSDP shards -> HF through verl's own
model merger, cached), or a run directory (`RUN`, `RUN@step=N`, `RUN@best=METRIC:max|min`, `RUN@last`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from trainer_platform.errors import SpecError, did_you_mean

_SUFFIX = re.compile(r"^(?P<path>.+?)@(?:(?P<last>last)|step=(?P<step>\d+)|best=(?P<metric>[^:]+):(?P<mode>max|min))$")


@dataclass(frozen=True)
class Context:
    """What `@model` and `@prev` stand for in the step being resolved."""

    model_path: str | None = None
    prev: Path | None = None


def is_hf_dir(path: Path) -> bool:
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def run_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of a run's verl checkpoints, oldest first."""
    ckpts = run_dir / "checkpoints"
    found = []
    for p in ckpts.glob("global_step_*"):
        if p.is_dir() and p.name.removeprefix("global_step_").isdigit():
            found.append((int(p.name.removeprefix("global_step_")), p))
    return sorted(found)


def best_checkpoint(run_dir: Path, metric: str, mode: str) -> tuple[int, Path, float]:
    """The checkpoint whose step has the best value of `metric` in the run's metrics.jsonl."""
    from trainer_platform.runs.metrics import read_jsonl

    ckpts = dict(run_checkpoints(run_dir))
    if not ckpts:
        raise SpecError(str(run_dir), "has no checkpoints", "train with train.save_every=N to keep checkpoints")
    values: dict[int, float] = {}
    keys: set[str] = set()
    for record in read_jsonl(run_dir / "metrics.jsonl"):
        keys.update(record["data"])
        value = record["data"].get(metric)
        if isinstance(value, (int, float)) and int(record["step"]) in ckpts:
            values[int(record["step"])] = float(value)
    if not values:
        guess = did_you_mean(metric, keys) or f"metrics logged: {', '.join(sorted(keys)[:12]) or 'none'}"
        steps = ", ".join(map(str, sorted(ckpts)))
        raise SpecError(f"@best={metric}", f"no value of {metric!r} at a checkpointed step ({steps})", guess)
    pick = max if mode == "max" else min
    step = pick(values, key=lambda s: (values[s], s))
    return step, ckpts[step], values[step]


def _run_checkpoint(run_dir: Path, spec: str) -> Path:
    m = _SUFFIX.match(spec)
    ckpts = dict(run_checkpoints(run_dir))
    if m and m["step"]:
        step = int(m["step"])
        if step not in ckpts:
            have = ", ".join(map(str, sorted(ckpts))) or "none"
            raise SpecError(spec, f"run has no checkpoint at step {step}", f"checkpointed steps: {have}")
        return ckpts[step]
    if m and m["metric"]:
        return best_checkpoint(run_dir, m["metric"], m["mode"])[1]
    if not ckpts:
        raise SpecError(spec, "run has no checkpoints", "train with train.save_every=N (the last step is saved)")
    return ckpts[max(ckpts)]


def resolve(source: str, ctx: Context, *, export: bool = True) -> Path:
    """The HF directory `source` names (a verl checkpoint is exported unless `export` is False: dry runs)."""
    if source == "@prev":
        if ctx.prev is None:
            raise SpecError("@prev", "the first step has no previous output", "name the model (or use @model)")
        return ctx.prev
    if source == "@model":
        if not export and ctx.model_path is not None:  # dry run: a built-in model may not be built yet
            return Path(ctx.model_path).expanduser().resolve()
        if ctx.model_path is None or not Path(ctx.model_path).expanduser().is_dir():
            raise SpecError("@model", f"the model group's model is not a local folder ({ctx.model_path})", "")
        return Path(ctx.model_path).expanduser().resolve()
    m = _SUFFIX.match(source)
    path = Path(m["path"] if m else source).expanduser().resolve()
    if not path.exists():
        raise SpecError(source, "no such file or directory", "give an HF model folder, a verl checkpoint or a run dir")
    if (path / "checkpoints").is_dir() or m:
        if not (path / "checkpoints").is_dir():
            raise SpecError(source, "@step/@best/@last need a run directory (with checkpoints/)", "")
        path = _run_checkpoint(path, source)
    if is_hf_dir(path):
        return path
    if _verl_dir(path) is not None:
        return export_checkpoint(path) if export else path
    raise SpecError(
        source, "is neither an HF model folder (config.json + *.safetensors) nor a verl checkpoint", "check the path"
    )


def _verl_dir(path: Path) -> Path | None:
    """The folder with verl's FSDP shards (fsdp_config.json) in a checkpoint, or None."""
    for candidate in (path / "actor", path):
        if (candidate / "fsdp_config.json").is_file():
            return candidate
    return None


def fingerprint(path: Path) -> str:
    """A cheap identity of a folder's files (names, sizes, modification times): keys caches, not lineage."""
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def export_checkpoint(ckpt: Path) -> Path:
    """A verl FSDP checkpoint as an HF folder: exported once into the cache by the `export` command's own path
    (trainer_platform.export: verl's model merger, staged and renamed into place)."""
    from trainer_platform.export import ExportPlan, export, merger_source
    from trainer_platform.paths import cache_dir

    local = merger_source(ckpt)
    hf = local / "huggingface"
    if is_hf_dir(hf):  # verl saved full HF weights already
        return hf
    target = cache_dir() / "exports" / f"{ckpt.name}-{fingerprint(local)}"
    if is_hf_dir(target):
        return target
    step = ckpt.name.removeprefix("global_step_")
    plan = ExportPlan(run=ckpt.parent.parent, step=int(step) if step.isdigit() else 0, source=local, out=target)
    return export(plan)


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def content_hashes(path: Path) -> dict[str, str]:
    """sha256 of every file of a model folder (or of one file), for the lineage record."""
    if path.is_file():
        return {path.name: sha256_file(path)}
    return {p.name: sha256_file(p) for p in sorted(path.iterdir()) if p.is_file()}


def read_config(path: Path) -> dict:
    try:
        return json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise SpecError(str(path / "config.json"), f"cannot read it ({exc})", "is this an HF model folder?") from None
