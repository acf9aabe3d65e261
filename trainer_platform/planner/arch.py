"""The model architecture the memory model needs: from config.json when the weights are on disk, else the preset.

Only facts that change memory are kept. Derived counts (per-layer parameters, KV bytes per token) live here too,
so the memory model reads like the formulas it implements.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer_platform.spec import Arch, ModelSpec


@dataclass(frozen=True)
class ModelFacts:
    """Architecture facts of one decoder-only transformer."""

    # total parameters (all experts of an MoE)
    params: int
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tie_embeddings: bool
    # routed experts per MoE layer (0 = dense) and experts each token uses
    experts: int = 0
    experts_per_token: int = 0
    # one expert's MLP intermediate size (MoE)
    moe_intermediate: int = 0
    # where the facts came from: "config.json" or "preset"
    source: str = "preset"

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def embedding_params(self) -> int:
        """Input embedding plus output head (one matrix when tied)."""
        return self.vocab * self.hidden * (1 if self.tie_embeddings else 2)

    @property
    def layer_params(self) -> int:
        """Parameters of one decoder layer (the unit FSDP gathers at a time)."""
        return max(1, (self.params - self.embedding_params) // self.layers)

    @property
    def active_intermediate(self) -> int:
        """MLP width one token passes through: all of a dense MLP, its routed experts' in an MoE."""
        if self.experts:
            return self.experts_per_token * (self.moe_intermediate or self.intermediate)
        return self.intermediate

    def lora_params(self, rank: int) -> int:
        """Trainable LoRA parameters with verl's default target_modules=all-linear (q, k, v, o, gate, up, down)."""
        h, mlp = self.hidden, self.active_intermediate if not self.experts else self.intermediate
        per_layer = (h + self.q_dim) * 2 + (h + self.kv_dim) * 2 + (h + mlp) * 3
        return rank * per_layer * self.layers


def facts_from_arch(arch: Arch) -> ModelFacts:
    return ModelFacts(
        params=arch.params,
        layers=arch.layers,
        hidden=arch.hidden,
        intermediate=arch.intermediate,
        heads=arch.heads,
        kv_heads=arch.kv_heads,
        head_dim=arch.head_dim or arch.hidden // arch.heads,
        vocab=arch.vocab,
        tie_embeddings=arch.tie_embeddings,
        experts=arch.experts,
        experts_per_token=arch.experts_per_token,
        moe_intermediate=arch.moe_intermediate or 0,
    )


def facts_from_config(config: dict[str, Any], fallback_params: int) -> ModelFacts:
    """Facts from a Hugging Face config.json (text config of multimodal models), params counted when possible."""
    cfg = config.get("text_config", config)
    hidden, layers = int(cfg["hidden_size"]), int(cfg["num_hidden_layers"])
    heads = int(cfg["num_attention_heads"])
    kv_heads = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or hidden // heads)
    vocab, inter = int(cfg["vocab_size"]), int(cfg.get("intermediate_size") or 4 * hidden)
    tie = bool(config.get("tie_word_embeddings", cfg.get("tie_word_embeddings", False)))
    experts = int(cfg.get("num_experts") or cfg.get("n_routed_experts") or cfg.get("num_local_experts") or 0)
    per_token = int(cfg.get("num_experts_per_tok") or 0)
    moe_inter = int(cfg.get("moe_intermediate_size") or 0)
    # gate, up and down projections of every expert plus the router (dense: one MLP)
    mlp = 3 * hidden * experts * (moe_inter or inter) + hidden * experts if experts else 3 * hidden * inter
    attn = hidden * (heads * head_dim) * 2 + hidden * (kv_heads * head_dim) * 2
    # q/k/v biases: Qwen2 always has them; others say so with attention_bias
    if cfg.get("model_type") == "qwen2" or cfg.get("attention_bias"):
        attn += heads * head_dim + 2 * kv_heads * head_dim
    # two RMSNorms per layer, the final norm, the embeddings (and an untied output head)
    counted = layers * (attn + mlp + 2 * hidden) + hidden + vocab * hidden * (1 if tie else 2)
    return ModelFacts(
        params=counted or fallback_params,
        layers=layers,
        hidden=hidden,
        intermediate=inter,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        vocab=vocab,
        tie_embeddings=tie,
        experts=experts,
        experts_per_token=per_token,
        moe_intermediate=moe_inter,
        source="config.json",
    )


def model_facts(model: ModelSpec) -> ModelFacts:
    """config.json when the model is a local directory that has one, else the preset's arch block."""
    if model.path and model.is_local_path:
        config = Path(model.path).expanduser() / "config.json"
        try:
            data = json.loads(config.read_text())
            return facts_from_config(data, model.arch.params)
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return facts_from_arch(model.arch)
