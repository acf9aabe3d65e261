"""Each term of the memory model against values computed by hand for Qwen2.5-7B (config.json numbers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer_platform.planner.arch import ModelFacts, facts_from_config, model_facts
from trainer_platform.planner.gpus import gpu_by_device_name, gpu_by_slug
from trainer_platform.planner.memory import (
    GIB,
    Settings,
    Workload,
    activation_bytes_per_token_layer,
    estimate,
    kv_bytes_per_token,
    micro_tokens,
)
from trainer_platform.spec import ModelSpec

# Qwen2.5-7B-Instruct's config.json
QWEN7B = {
    "model_type": "qwen2",
    "hidden_size": 3584,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "intermediate_size": 18944,
    "vocab_size": 152064,
    "tie_word_embeddings": False,
}
P = 7615616512
M = facts_from_config(QWEN7B, 0)
RL = Workload(
    kind="rl",
    seq_len=1536,
    world=8,
    gpus_per_node=8,
    per_rank_sequences=160,
    per_rank_batch=640,
    reference=True,
    rollout_engine="vllm",
)


def term(est, phase: str, role: str, kind: str) -> float:
    found = [t.gib for p in est.phases if p.name == phase for t in p.terms if (t.role, t.kind) == (role, kind)]
    return sum(found) * GIB


def test_parameter_count_from_config_matches_the_published_total() -> None:
    assert M.params == P  # the count Hugging Face reports for Qwen2.5-7B-Instruct
    qwen05 = {
        **QWEN7B,
        "hidden_size": 896,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "intermediate_size": 4864,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
    }
    assert facts_from_config(qwen05, 0).params == 494032768


def test_derived_sizes() -> None:
    assert (M.head_dim, M.q_dim, M.kv_dim) == (128, 3584, 512)
    assert M.embedding_params == 2 * 152064 * 3584
    assert M.layer_params == (P - 2 * 152064 * 3584) // 28
    # all-linear LoRA: (h+q)*2 for q,o + (h+kv)*2 for k,v + (h+I)*3 for gate,up,down, times rank and layers
    per_layer = (3584 + 3584) * 2 + (3584 + 512) * 2 + (3584 + 18944) * 3
    assert M.lora_params(32) == 32 * per_layer * 28


def test_kv_cache_bytes_per_token() -> None:
    assert kv_bytes_per_token(M, 1) == 2 * 28 * 4 * 128 * 2
    assert kv_bytes_per_token(M, 2) == 2 * 28 * 2 * 128 * 2
    # TP beyond the 4 KV heads replicates them: one head per rank
    assert kv_bytes_per_token(M, 8) == 2 * 28 * 1 * 128 * 2


def test_activation_bytes_per_token_and_layer() -> None:
    h, q, kv, inter = 3584, 3584, 512, 18944
    assert activation_bytes_per_token_layer(M) == 2 * (6 * h + 2 * q + 3 * kv + 4 * inter) + 4 * 2 * h


def test_training_state_is_sharded_over_the_world() -> None:
    s = Settings(dynamic=True, max_tokens=8192, gradient_checkpointing=True)
    est = estimate(M, RL, s, 80.0)
    assert term(est, "actor update", "actor", "weights") == pytest.approx(P * 4 / 8)
    assert term(est, "actor update", "actor", "gradients") == pytest.approx(P * 4 / 8)
    assert term(est, "actor update", "actor", "optimizer states") == pytest.approx(P * 8 / 8)
    assert term(est, "actor update", "ref", "weights") == pytest.approx(P * 4 / 8)


def test_activations_logits_and_gathered_layers_of_an_update() -> None:
    tokens = 8192
    ckpt = estimate(M, RL, Settings(dynamic=True, max_tokens=tokens, gradient_checkpointing=True), 80.0)
    per_layer = activation_bytes_per_token_layer(M) * tokens
    assert term(ckpt, "actor update", "actor", "activations") == pytest.approx(tokens * 28 * 3584 * 2 + 2 * per_layer)
    full = estimate(M, RL, Settings(dynamic=True, max_tokens=tokens, gradient_checkpointing=False), 80.0)
    assert term(full, "actor update", "actor", "activations") == pytest.approx(28 * per_layer)
    assert term(full, "actor update", "actor", "logits") == pytest.approx(tokens * 152064 * 4)
    gathered = 2 * 152064 * 3584 * 2 + 2 * M.layer_params * 2 + M.layer_params * 4
    assert term(full, "actor update", "actor", "gathered layers") == pytest.approx(gathered)
    assert term(full, "log-prob", "actor", "logits") == pytest.approx(tokens * 152064 * 6)


def test_rollout_engine_share_weights_and_kv_cache() -> None:
    s = Settings(rollout_tp=2, rollout_fraction=0.5, param_offload=True, optimizer_offload=True, ref_offload=True)
    est = estimate(M, RL, s, 80.0)
    weights = P * 2 / 2
    assert term(est, "rollout", "rollout", "engine weights") == pytest.approx(weights)
    kv = 40.0 * GIB - weights - 0.5 * GIB
    assert term(est, "rollout", "rollout", "KV cache") == pytest.approx(kv)
    assert est.kv_tokens == int(kv / (2 * 28 * 2 * 128 * 2))
    # everything offloaded: no training state stays on the GPU during rollout
    assert term(est, "rollout", "actor", "weights") == 0 and term(est, "rollout", "ref", "weights") == 0


def test_offload_keeps_state_off_the_gpu_between_phases_but_not_during_the_update() -> None:
    s = Settings(param_offload=True, optimizer_offload=True, dynamic=True, max_tokens=4096)
    est = estimate(M, RL, s, 80.0)
    assert term(est, "log-prob", "actor", "optimizer states") == 0
    assert term(est, "actor update", "actor", "optimizer states") == pytest.approx(P)  # loaded back for the step


def test_lora_trains_adapters_and_has_no_separate_reference() -> None:
    est = estimate(M, RL, Settings(lora_rank=32, dynamic=True, max_tokens=4096), 80.0)
    assert term(est, "actor update", "actor", "optimizer states") == pytest.approx(M.lora_params(32) * 8 / 8)
    assert term(est, "actor update", "ref", "weights") == 0


def test_micro_batch_tokens() -> None:
    fixed = Settings(micro_batch=4, ulysses=2)
    assert micro_tokens(RL, fixed, fill=1.0) == 4 * 1536 / 2
    assert micro_tokens(RL, fixed, fill=0.5) == 4 * 1536 * 0.5 / 2
    # a dynamic budget is capped by what the rank holds and never below one sequence
    small_rank = Workload(kind="rl", seq_len=1536, world=8, gpus_per_node=8, per_rank_sequences=2)
    assert micro_tokens(small_rank, Settings(dynamic=True, max_tokens=65536), fill=1.0) == 2 * 1536
    assert micro_tokens(small_rank, Settings(dynamic=True, max_tokens=512), fill=1.0) == 1536
    pairs = Workload(kind="dpo", seq_len=1024, world=1, gpus_per_node=1, per_rank_sequences=8, sequences_per_sample=2)
    assert micro_tokens(pairs, Settings(micro_batch=2), fill=1.0) == 2 * 2 * 1024


def test_model_facts_prefer_config_json_on_disk(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(QWEN7B))
    arch = {
        "family": "x",
        "params": 1,
        "layers": 1,
        "hidden": 8,
        "heads": 1,
        "kv_heads": 1,
        "vocab": 8,
        "intermediate": 8,
    }
    spec = ModelSpec(name="m", path=str(tmp_path), arch=arch)  # type: ignore[arg-type]
    facts: ModelFacts = model_facts(spec)
    assert (facts.source, facts.params, facts.layers) == ("config.json", P, 28)
    assert model_facts(spec.model_copy(update={"path": "Org/hub-id"})).source == "preset"


def test_gpu_table_names() -> None:
    assert gpu_by_device_name("NVIDIA H200").slug == "h200"  # type: ignore[union-attr]
    assert gpu_by_device_name("NVIDIA H20").slug == "h20"  # type: ignore[union-attr]
    assert gpu_by_device_name("NVIDIA A100-SXM4-40GB").memory_gib == 40.0  # type: ignore[union-attr]
    assert gpu_by_device_name("NVIDIA A100-SXM4-80GB").memory_gib == 80.0  # type: ignore[union-attr]
    assert gpu_by_device_name("NVIDIA GeForce RTX 4090").slug == "rtx4090"  # type: ignore[union-attr]
    assert gpu_by_device_name("AMD Instinct MI300X").memory_gib == 192.0  # type: ignore[union-attr]
    # "a10" must not swallow A100 names (longest name first), and A10/A10G boards are found
    assert gpu_by_device_name("NVIDIA A10").slug == "a10"  # type: ignore[union-attr]
    assert gpu_by_device_name("NVIDIA A10G").slug == "a10"  # type: ignore[union-attr]
    assert gpu_by_device_name("NVIDIA A100 80GB PCIe").slug == "a100_80g"  # type: ignore[union-attr]
    for slug in ("a100_40g", "a100_80g", "h100", "h200", "b200", "l40s", "rtx4090", "rtx5090", "mi300x"):
        assert gpu_by_slug(slug) is not None, slug
