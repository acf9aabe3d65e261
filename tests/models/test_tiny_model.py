"""The built-in tiny model: builds offline, loads with transformers, chats in ChatML, and is byte-reproducible."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from trainer_platform.models import tiny


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny.ensure_tiny_model(tmp_path_factory.mktemp("cache"))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_layout_and_reuse(model_dir: Path) -> None:
    assert model_dir.name == f"tiny-qwen2-{tiny.recipe_hash()}"
    assert model_dir.parent.name == "models"
    for name in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json"):
        assert (model_dir / name).is_file(), name
    stamp = (model_dir / "model.safetensors").stat().st_mtime_ns
    assert tiny.ensure_tiny_model(model_dir.parent.parent) == model_dir
    assert (model_dir / "model.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in model_dir.parent.iterdir()] == [model_dir.name]  # no temp folders left


def test_config_matches_constants(model_dir: Path) -> None:
    config = AutoConfig.from_pretrained(model_dir)
    assert config.model_type == tiny.MODEL_TYPE
    assert config.architectures == [tiny.ARCHITECTURE]
    assert config.hidden_size == tiny.HIDDEN_SIZE
    assert config.num_hidden_layers == tiny.NUM_LAYERS
    assert config.num_attention_heads == tiny.NUM_HEADS
    assert config.num_key_value_heads == tiny.NUM_KV_HEADS
    assert config.intermediate_size == tiny.INTERMEDIATE_SIZE
    assert config.vocab_size == tiny.VOCAB_SIZE
    assert config.tie_word_embeddings is True


def test_model_loads_and_generates(model_dir: Path) -> None:
    model: Any = AutoModelForCausalLM.from_pretrained(model_dir)
    assert sum(p.numel() for p in model.parameters()) == tiny.NUM_PARAMS
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    messages = [{"role": "user", "content": "What is 3 + 5?"}]
    batch: Any = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    prompt_len = batch["input_ids"].shape[1]
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (1, prompt_len, tiny.VOCAB_SIZE)
    out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    assert out.shape[0] == 1 and prompt_len < out.shape[1] <= prompt_len + 4


def test_tokenizer_chatml(model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert len(tokenizer) == tiny.VOCAB_SIZE
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token is not None and tokenizer.pad_token_id != tokenizer.eos_token_id
    messages = [{"role": "user", "content": "What is 3 + 5?"}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>user\nWhat is 3 + 5?<|im_end|>\n<|im_start|>assistant\n"
    answer = "3 + 5 = 8.\n#### 8"
    ids = tokenizer(answer)["input_ids"]
    assert tokenizer.decode(ids) == answer
    assert len(ids) < len(answer)  # BPE merges learned from the arithmetic corpus
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tokenizer("x<|im_end|>")["input_ids"][-1] == im_end


def test_two_builds_are_byte_identical(model_dir: Path, tmp_path: Path) -> None:
    other = tiny.ensure_tiny_model(tmp_path)
    assert other != model_dir
    for name in ("model.safetensors", "tokenizer.json", "config.json", "generation_config.json"):
        assert _digest(other / name) == _digest(model_dir / name), name
