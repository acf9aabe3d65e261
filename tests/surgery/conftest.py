"""Small real HF models (Qwen2 shapes, 4 layers, the tiny tokenizer) written once per session for surgery tests."""

from __future__ import annotations

from pathlib import Path

import pytest


def make_model(out: Path, seed: int, dtype: str = "bfloat16", tied: bool = True, layers: int = 4) -> Path:
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from trainer_platform.models.tiny import ensure_tiny_model

    tok = AutoTokenizer.from_pretrained(ensure_tiny_model())
    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=tied,
        dtype=dtype,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(cfg).to(getattr(torch, dtype))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """a, b, c: tied bf16 models of one shape; fa, fb, fc: the same in float32; untied: an untied bf16 model."""
    root = tmp_path_factory.mktemp("surgery-models")
    out = {}
    for i, name in enumerate("abc"):
        out[name] = make_model(root / name, i)
        out["f" + name] = make_model(root / ("f" + name), i, dtype="float32")
    out["untied"] = make_model(root / "untied", 7, tied=False)
    out["deep"] = make_model(root / "deep", 8, layers=6)
    return out
