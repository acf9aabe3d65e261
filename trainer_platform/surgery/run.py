"""Run a surgery: resolve each step's sources, build its program, stream it into the output folder, write the
lineage file. The output appears atomically (built in a temporary sibling, renamed into place)."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from trainer_platform.errors import SpecError
from trainer_platform.surgery import steps as S
from trainer_platform.surgery.sources import Context, content_hashes, resolve

LINEAGE = "lineage.json"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_SKIP = ("model.safetensors.index.json", "pytorch_model.bin.index.json", LINEAGE, "adapter_config.json")
_LIBS = ("trainer-platform", "torch", "safetensors", "transformers", "peft", "gguf", "verl")
_MERGES = (S.LinearOp, S.TaskArithmeticOp, S.TiesOp, S.DareOp, S.BreadcrumbsOp, S.SlerpOp)


@dataclass(frozen=True)
class StepInputs:
    # model folders the step reads (base first), resolved
    models: tuple[Path, ...]
    # other files it reads (adapter folder, GGUF file)
    extra: tuple[Path, ...] = ()


def default_sources(steps: tuple[Any, ...]) -> tuple[Any, ...]:
    """The first step's single-model input defaults to @model (later ones keep @prev)."""
    out = []
    for i, step in enumerate(steps):
        if i == 0 and getattr(step, "model", None) == "@prev":
            step = step.model_copy(update={"model": "@model"})
        out.append(step)
    return tuple(out)


def step_inputs(step: Any, ctx: Context, *, export: bool = True) -> StepInputs:
    if isinstance(step, S.GgufImportOp):
        return StepInputs((), (Path(step.file).expanduser().resolve(),))
    if isinstance(step, S.LoraMergeOp):
        from trainer_platform.surgery.lora import adapter_config

        adapter = Path(step.adapter).expanduser().resolve()
        base = step.base or adapter_config(adapter).get("base_model_name_or_path") or "@prev"
        if ctx.prev is not None and step.base is None:
            base = "@prev"
        return StepInputs((resolve(base, ctx, export=export),), (adapter,))
    if isinstance(step, S.AverageOp):
        from trainer_platform.surgery.sources import run_checkpoints

        run = Path(step.run).expanduser().resolve()
        ckpts = run_checkpoints(run)
        if not ckpts:
            raise SpecError("surgery.run", f"{run} has no checkpoints", "give a run dir trained with train.save_every")
        chosen = ckpts[-step.last :] if step.last else ckpts
        if step.last and step.last > len(ckpts):
            raise SpecError("surgery.last", f"the run has only {len(ckpts)} checkpoints", f"use last<={len(ckpts)}")
        return StepInputs(tuple(resolve(str(p), ctx, export=export) for _, p in chosen))
    return StepInputs(tuple(resolve(s, ctx, export=export) for s in step.sources()))


def ema_weights(n: int, decay: float) -> list[float]:
    """Weights of an exponential moving average over n checkpoints, oldest first (the average starts at the first)."""
    return [decay ** (n - 1)] + [(1 - decay) * decay ** (n - 1 - i) for i in range(1, n)]


def build_program(step: Any, inputs: StepInputs, dtype: str, work: Path):  # -> Program
    from trainer_platform.surgery import ops

    if isinstance(step, _MERGES):
        return ops.merge_program(step, list(inputs.models), dtype)
    if isinstance(step, S.AverageOp):
        n = len(inputs.models)
        weights = tuple(ema_weights(n, step.ema)) if step.ema else (1.0,) * n
        if n == 1:
            return ops.copy_program(inputs.models[0], dtype)
        linear = S.LinearOp(op="linear", models=tuple(map(str, inputs.models)), weights=weights, normalize=True)
        return ops.merge_program(linear, list(inputs.models), dtype)
    if isinstance(step, S.CopyOp):
        return ops.copy_program(inputs.models[0], dtype)
    if isinstance(step, S.DropLayersOp | S.UpscaleDepthOp):
        return ops.layers_program(step, inputs.models[0], dtype)
    if isinstance(step, S.AddTokensOp | S.ResizeVocabOp):
        from trainer_platform.surgery.vocab import vocab_program

        return vocab_program(step, inputs.models[0], dtype)
    if isinstance(step, S.LoraMergeOp):
        from trainer_platform.surgery.lora import lora_program

        return lora_program(inputs.extra[0], inputs.models[0], dtype)
    if isinstance(step, S.GgufImportOp):
        from trainer_platform.surgery.gguf import gguf_program

        return gguf_program(inputs.extra[0], dtype, work)
    raise AssertionError(step)


def _copy_files(src: Path, dst: Path, updates: dict[str, Any], tokenizer: Any) -> None:
    for p in sorted(src.iterdir()):
        if p.is_file() and not p.name.endswith(_WEIGHT_SUFFIXES) and p.name not in _SKIP:
            shutil.copy2(p, dst / p.name)
    config = json.loads((dst / "config.json").read_text())
    config.update(updates)
    (dst / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if tokenizer is not None:
        tokenizer.save_pretrained(dst)


def library_versions() -> dict[str, str]:
    out = {}
    for lib in _LIBS:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            continue
    return out


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


def run_surgery(
    surgery: S.SurgerySpec, output: Path, *, model_path: str | None = None, dry_run: bool = False, log=print
) -> Path:
    """Apply `surgery.steps` in order and write the result to `output` (which must not exist yet)."""
    from trainer_platform.surgery.tensors import total_bytes, write_checkpoint

    if not surgery.steps:
        raise SpecError("surgery.steps", "no operations to run", "pick a surgery preset: surgery=NAME")
    if output.exists() and any(output.iterdir()) if output.is_dir() else output.exists():
        raise SpecError("surgery.output", f"{output} already exists", "choose a new folder or remove it")
    steps = default_sources(surgery.steps)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    lineage: dict[str, Any] = {"format": 1, "steps": [], "library_versions": library_versions()}
    hasher = ThreadPoolExecutor(max_workers=1)
    try:
        prev: Path | None = None
        for i, step in enumerate(steps):
            ctx = Context(model_path=model_path, prev=prev)
            inputs = step_inputs(step, ctx, export=not dry_run)
            target = tmp_root / f"step{i}"
            target.mkdir()
            reads = (*inputs.models, *inputs.extra)
            hashes: dict[Path, Future] = {} if dry_run else {p: hasher.submit(content_hashes, p) for p in reads}
            if dry_run and prev is not None:
                log(f"step {i + 1}: {step.op} on the output of step {i} -> (sizes known once step {i} has run)")
                continue
            program = build_program(step, inputs, surgery.dtype, tmp_root / f"work{i}")
            size = total_bytes(program.tensors)
            if dry_run:
                listed = ", ".join(str(p) for p in reads)
                shards = -(-size // (int(surgery.max_shard_size_mb * 2**20)))
                log(f"step {i + 1}: {step.op}")
                log(f"  reads   {listed}")
                log(f"  writes  {len(program.tensors)} tensors, {_human(size)} in {max(1, shards)} shard(s)")
                prev = target
                continue
            started = time.perf_counter()
            written = write_checkpoint(target, program.tensors, int(surgery.max_shard_size_mb * 2**20))
            _copy_files(program.files_from, target, program.config_updates, program.tokenizer)
            lineage["steps"].append(
                {
                    "op": step.op,
                    "params": step.model_dump(mode="json"),
                    "inputs": [{"path": str(p), "sha256": f.result()} for p, f in hashes.items()],
                    "tensors": len(program.tensors),
                    "bytes": written,
                    "seconds": round(time.perf_counter() - started, 3),
                }
            )
            if prev is not None and prev.parent == tmp_root:
                shutil.rmtree(prev, ignore_errors=True)
            prev = target
        if dry_run:
            log(f"output: {output} (nothing written: dry run)")
            return output
        assert prev is not None
        lineage["output"] = str(output)
        lineage["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        (prev / LINEAGE).write_text(json.dumps(lineage, indent=2) + "\n")
        if output.is_dir():
            output.rmdir()  # empty (checked above)
        prev.rename(output)
        return output
    finally:
        hasher.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(tmp_root, ignore_errors=True)
