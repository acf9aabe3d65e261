"""Load tests/planner/published_configs.yaml into the memory model's inputs and judge each entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from trainer_platform.compose import compose_config
from trainer_platform.planner.arch import ModelFacts, facts_from_arch
from trainer_platform.planner.gpus import gpu_by_slug
from trainer_platform.planner.memory import Settings, Workload, fits_when
from trainer_platform.spec import Arch

DATA = Path(__file__).with_name("published_configs.yaml")


def load() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    data = yaml.safe_load(DATA.read_text())
    return data["archs"], data["configs"]


def facts(name: str, archs: dict[str, Any]) -> ModelFacts:
    if name in archs:
        a = archs[name]
        arch = Arch(
            family="published",
            params=a["params"],
            layers=a["layers"],
            hidden=a["hidden"],
            heads=a["heads"],
            kv_heads=a["kv_heads"],
            vocab=a["vocab"],
            intermediate=a["intermediate"],
            tie_embeddings=a["tie"],
        )
        return facts_from_arch(arch)
    cfg = compose_config([f"model={name}"])
    return facts_from_arch(Arch(**cfg["model"]["arch"]))


def judge(entry: dict[str, Any], archs: dict[str, Any]) -> str:
    """'yes' | 'tight' | 'no' for one published entry, with no safety margin (verdict of the settings as used)."""
    gpu = gpu_by_slug(entry["gpu"])
    assert gpu is not None, entry["gpu"]
    world = entry["world"]
    workload = Workload(
        kind="rl",
        seq_len=entry["prompt"] + entry["response"],
        world=world,
        gpus_per_node=entry.get("gpus_per_node", world),
        per_rank_sequences=entry.get("per_rank_update", entry.get("micro", 1)),
        per_rank_batch=entry.get("per_rank_batch", 0),
        reference=entry.get("ref", False),
        critic=entry.get("critic", False),
        rollout_engine="vllm",
        entropy_in_loss=entry.get("entropy", False),
    )
    dynamic = "dynamic_tokens" in entry
    settings = Settings(
        param_offload=entry["offload"][0],
        optimizer_offload=entry["offload"][1],
        ref_offload=entry.get("ref_offload"),
        gradient_checkpointing=entry["ckpt"],
        micro_batch=entry.get("micro", 1),
        log_prob_micro=entry.get("log_prob_micro"),
        dynamic=dynamic,
        max_tokens=entry.get("dynamic_tokens", 16384),
        ulysses=entry.get("ulysses", 1),
        rollout_tp=entry["tp"],
        rollout_fraction=entry["fraction"],
        lora_rank=entry["lora"],
    )
    return fits_when(facts(entry["model"], archs), workload, settings, gpu.memory_gib, margin=0.0)
