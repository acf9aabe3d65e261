"""Each operation as a program: the output tensors (streamed), the folder whose config/tokenizer files to copy,
and the config.json changes. Building a program reads shard headers only; tensors are read when written."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainer_platform.errors import SpecError
from trainer_platform.surgery import merges
from trainer_platform.surgery import steps as S
from trainer_platform.surgery.sources import read_config
from trainer_platform.surgery.tensors import Checkpoint, Lazy, OutTensor, Source, passthrough

_LAYER = re.compile(r"^(?P<pre>.*?\b(?:layers|h|blocks)\.)(?P<idx>\d+)(?P<post>\..+)$")
_EMBED_NAMES = ("embed_tokens.weight", "wte.weight", "embed_in.weight", "word_embeddings.weight")
_HEAD_NAMES = ("lm_head.weight", "embed_out.weight")


@dataclass
class Program:
    """What one step writes."""

    tensors: list[OutTensor]
    # folder whose non-weight files (config, tokenizer, generation config) are copied
    files_from: Path
    config_updates: dict[str, Any] = field(default_factory=dict)
    # a tokenizer object to save instead of copying the tokenizer files
    tokenizer: Any = None


def layer_index(name: str) -> int | None:
    m = _LAYER.match(name)
    return int(m["idx"]) if m else None


def num_layers(config: dict[str, Any]) -> int:
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        if isinstance(config.get(key), int):
            return int(config[key])
    raise SpecError("config.json", "has no num_hidden_layers", "layer operations need a transformer config")


def _float(t: torch.dtype) -> bool:
    return t.is_floating_point


def check_compatible(paths: list[Path], ckpts: list[Checkpoint]) -> None:
    """Same architecture, same tensor names and shapes: else a SpecError naming the first difference."""
    ref_cfg, ref = read_config(paths[0]), ckpts[0]
    for path, ck in zip(paths[1:], ckpts[1:], strict=False):
        cfg = read_config(path)
        for key in ("model_type", "architectures"):
            if cfg.get(key) != ref_cfg.get(key):
                raise SpecError(
                    str(path),
                    f"{key} {cfg.get(key)} differs from {ref_cfg.get(key)} in {paths[0]}",
                    "merge models of one architecture",
                )
        missing = sorted(set(ref.infos) ^ set(ck.infos))
        if missing:
            raise SpecError(str(path), f"tensor {missing[0]} is in one model but not the other", "same architecture?")
        for name, info in ref.infos.items():
            if ck.infos[name].shape != info.shape:
                raise SpecError(
                    str(path),
                    f"tensor {name} has shape {list(ck.infos[name].shape)}, {paths[0]} has {list(info.shape)}",
                    "merge models of one size (resize the vocabulary first if only it differs)",
                )


def _out_dtype(dtype: str, default: torch.dtype) -> torch.dtype:
    return default if dtype == "auto" or not _float(default) else getattr(torch, dtype)


def _merge_tensors(
    ckpts: list[Checkpoint], dtype: str, fn: Callable[[str, list[Source]], Iterator[torch.Tensor]]
) -> list[OutTensor]:
    out = []
    for name, info in ckpts[0].infos.items():
        if not _float(info.dtype):
            out.append(passthrough(name, ckpts[0]))
            continue

        def chunks(name: str = name) -> Iterator[torch.Tensor]:
            return fn(name, [Lazy(ck, name) for ck in ckpts])

        out.append(OutTensor(name, info.shape, _out_dtype(dtype, info.dtype), chunks))
    return out


def merge_program(step: Any, paths: list[Path], dtype: str) -> Program:
    """linear, task_arithmetic, slerp, ties, dare, breadcrumbs over `paths` (base first where there is one)."""
    ckpts = [Checkpoint(p) for p in paths]
    check_compatible(paths, ckpts)
    if isinstance(step, S.LinearOp):
        weights = step.weights or (1.0,) * len(paths)
        fn: Callable[[str, list[Source]], Iterator[torch.Tensor]] = lambda n, ts: merges.linear(  # noqa: E731
            ts, weights, step.normalize
        )
    elif isinstance(step, S.SlerpOp):
        layers = num_layers(read_config(paths[0]))
        fn = lambda n, ts: merges.slerp(ts[0], ts[1], slerp_t(step.t, layer_index(n), layers))  # noqa: E731
    else:
        weights = step.weights or (1.0,) * len(step.models)
        kw: dict[str, Any] = {"sparsify": "none", "consensus": False}
        if isinstance(step, S.TiesOp):
            kw = {"sparsify": "magnitude", "density": step.density, "consensus": True}
        elif isinstance(step, S.DareOp):
            kw = {"sparsify": "random", "density": step.density, "consensus": step.merge == "ties", "seed": step.seed}
        elif isinstance(step, S.BreadcrumbsOp):
            kw = {"sparsify": "magnitude", "density": step.density, "gamma": step.gamma}
            kw["consensus"] = step.merge == "ties"

        def fn(n: str, ts: list[Source]) -> Iterator[torch.Tensor]:
            return merges.sparse_delta(ts[0], ts[1:], weights, normalize=step.normalize, scale=step.scale, name=n, **kw)

    return Program(_merge_tensors(ckpts, dtype, fn), files_from=paths[0])


def slerp_t(t: float | tuple[float, ...], layer: int | None, layers: int) -> float:
    """mergekit's gradient: a list of t values spread over the layers (first to last); other tensors take t[0]."""
    if isinstance(t, float | int):
        return float(t)
    if layer is None or len(t) == 1:
        return float(t[0])
    pos = (layer / max(1, layers - 1)) * (len(t) - 1)
    i0 = int(pos)
    i1 = min(len(t) - 1, i0 + 1)
    return float(t[i0] + (t[i1] - t[i0]) * (pos - i0))


def copy_program(path: Path, dtype: str) -> Program:
    ck = Checkpoint(path)
    tensors = [passthrough(n, ck, _out_dtype(dtype, i.dtype)) for n, i in ck.infos.items()]
    return Program(tensors, files_from=path)


def layers_program(step: S.DropLayersOp | S.UpscaleDepthOp, path: Path, dtype: str) -> Program:
    """Drop layers or stack layer ranges; tensors are renamed, config.json's layer count (and layer_types) updated."""
    config = read_config(path)
    n = num_layers(config)
    key = "surgery.layers" if isinstance(step, S.DropLayersOp) else "surgery.ranges"
    if isinstance(step, S.DropLayersOp):
        bad = [i for i in step.layers if i >= n]
        if bad:
            raise SpecError(key, f"layer {bad[0]} is out of range: the model has layers 0..{n - 1}", "")
        source = [i for i in range(n) if i not in set(step.layers)]
        if not source:
            raise SpecError(key, "drops every layer", "keep at least one layer")
    else:
        source = []
        for start, end in step.ranges:
            if end > n:
                raise SpecError(key, f"range [{start}, {end}) is out of range: the model has {n} layers", "")
            source.extend(range(start, end))
    ck = Checkpoint(path)
    names = list(ck.infos)
    by_layer: dict[int, list[str]] = {}
    for name in names:
        idx = layer_index(name)
        if idx is not None:
            by_layer.setdefault(idx, []).append(name)
    first = min((i for i, name in enumerate(names) if layer_index(name) is not None), default=len(names))
    plain = [name for name in names if layer_index(name) is None]

    def copy(name: str, new_name: str | None = None) -> OutTensor:
        t = passthrough(name, ck, _out_dtype(dtype, ck.infos[name].dtype))
        return OutTensor(new_name or name, t.shape, t.dtype, t.chunks)

    tensors = [copy(name) for name in plain if names.index(name) < first]  # embeddings before the layers
    for new, old in enumerate(source):
        for name in by_layer.get(old, []):
            m = _LAYER.match(name)
            assert m is not None
            tensors.append(copy(name, f"{m['pre']}{new}{m['post']}"))
    tensors += [copy(name) for name in plain if names.index(name) >= first]  # final norm, lm_head
    updates: dict[str, Any] = {k: len(source) for k in ("num_hidden_layers", "n_layer") if k in config}
    if isinstance(config.get("layer_types"), list):
        updates["layer_types"] = [config["layer_types"][i] for i in source]
    return Program(tensors, files_from=path, config_updates=updates)
