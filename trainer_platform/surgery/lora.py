"""Merge a peft LoRA adapter into its base: W' = W + (alpha / r) * B @ A per targeted module (alpha / sqrt(r) with
rsLoRA; per-module rank_pattern / alpha_pattern honoured), streamed tensor by tensor from the base."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from trainer_platform.errors import SpecError
from trainer_platform.surgery.ops import Program, _out_dtype
from trainer_platform.surgery.tensors import Checkpoint, OutTensor, passthrough, read_header

_PREFIX = "base_model.model."


def adapter_config(adapter: Path) -> dict[str, Any]:
    path = adapter / "adapter_config.json"
    try:
        cfg: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        raise SpecError(str(path), "missing or unreadable", "point surgery.adapter at a peft adapter folder") from None
    if cfg.get("peft_type") != "LORA":
        raise SpecError(str(path), f"peft_type {cfg.get('peft_type')!r} is not LORA", "only LoRA adapters merge")
    if cfg.get("use_dora"):
        raise SpecError(str(path), "DoRA adapters are not supported", "merge it with peft's merge_and_unload")
    return cfg


def _pattern(patterns: dict[str, Any], module: str, default: Any) -> Any:
    for key, value in patterns.items():
        if re.search(rf"(^|\.){re.escape(key)}$", module) or re.fullmatch(key, module):
            return value
    return default


def lora_program(adapter: Path, base: Path, dtype: str) -> Program:
    cfg = adapter_config(adapter)
    weights = adapter / "adapter_model.safetensors"
    if not weights.is_file():
        raise SpecError(str(weights), "missing", "save the adapter with safe_serialization=True")
    lora = read_header(weights)
    ck = Checkpoint(base)
    pairs: dict[str, tuple[str, str]] = {}
    replaced: dict[str, str] = {}
    for key in lora:
        target = key.removeprefix(_PREFIX)
        if ".lora_A." in target:
            module = target.split(".lora_A.")[0]
            pairs[module + ".weight"] = (key, key.replace(".lora_A.", ".lora_B."))
        elif ".lora_B." not in target:
            replaced[target] = key  # modules_to_save: full tensors
    missing = [t for t in [*pairs, *replaced] if t not in ck.infos]
    if missing:
        raise SpecError(str(adapter), f"targets {missing[0]}, which the base {base} does not have", "wrong base?")
    r, alpha = cfg.get("r", 8), cfg.get("lora_alpha", 8)
    lora_ck = _AdapterFile(weights, lora)
    tensors = []
    for name, info in ck.infos.items():
        out_dtype = _out_dtype(dtype, info.dtype)
        if name in replaced:
            tensors.append(OutTensor(name, info.shape, out_dtype, _single(lora_ck, replaced[name])))
        elif name in pairs:
            module = name.removesuffix(".weight")
            rank = _pattern(cfg.get("rank_pattern") or {}, module, r)
            a = _pattern(cfg.get("alpha_pattern") or {}, module, alpha)
            scale = a / math.sqrt(rank) if cfg.get("use_rslora") else a / rank
            fan = bool(cfg.get("fan_in_fan_out"))
            tensors.append(OutTensor(name, info.shape, out_dtype, _merged(ck, name, lora_ck, pairs[name], scale, fan)))
        else:
            tensors.append(passthrough(name, ck, out_dtype))
    return Program(tensors, files_from=base)


class _AdapterFile:
    def __init__(self, path: Path, infos: dict) -> None:
        self.path, self.infos = path, infos

    def tensor(self, name: str) -> torch.Tensor:
        ck = Checkpoint.__new__(Checkpoint)
        ck.path, ck.infos = self.path.parent, self.infos
        return ck.tensor(name)


def _single(lora: _AdapterFile, key: str):  # -> Callable[[], Iterator[torch.Tensor]]
    def chunks() -> Iterator[torch.Tensor]:
        yield lora.tensor(key)

    return chunks


def _merged(ck: Checkpoint, name: str, lora: _AdapterFile, keys: tuple[str, str], scale: float, fan: bool):
    def chunks() -> Iterator[torch.Tensor]:
        w = ck.tensor(name).float()
        a, b = lora.tensor(keys[0]).float(), lora.tensor(keys[1]).float()
        delta = (b @ a) * scale
        yield w + (delta.T if fan else delta)

    return chunks
