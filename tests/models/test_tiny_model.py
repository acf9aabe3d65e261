"""The built-in tiny model: builds offline, loads with transformers, chats in ChatML, is byte-reproducible, and its
warm start makes it answer tiny_math prompts in the `#### <n>` shape, often but not always right."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from trainer_platform.data.tiny import build_rows
from trainer_platform.models import tiny, warmstart
from trainer_platform.paths import verl_ext_dir


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


def test_two_builds_are_byte_identical(model_dir: Path) -> None:
    # the session's shared cache (TRAINER_PLATFORM_CACHE, tests/conftest.py) holds another build: the one every
    # training test uses, built in another process, usually long before (a third build here would cost ~30 s)
    other = tiny.ensure_tiny_model()
    assert other != model_dir
    for name in ("model.safetensors", "tokenizer.json", "config.json", "generation_config.json"):
        assert _digest(other / name) == _digest(model_dir / name), name


def _reward() -> Any:
    spec = importlib.util.spec_from_file_location("tp_rewards", verl_ext_dir() / "tp_rewards.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.compute_score


def test_warm_start_is_deterministic_and_restores_the_callers_state(model_dir: Path) -> None:
    from transformers import Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    config = AutoConfig.from_pretrained(model_dir)
    settings = {**warmstart.WARM_START, "steps": 4, "batch_size": 8, "warmup_steps": 2}
    states = []
    for _ in range(2):
        torch.manual_seed(0)
        model: Any = Qwen2ForCausalLM(config)
        expected = torch.Generator().manual_seed(123)
        torch.manual_seed(123)
        threads = torch.get_num_threads()
        losses = warmstart.warm_start(model, tokenizer, settings)
        assert len(losses) == 4 and losses[-1] < losses[0]
        assert torch.get_num_threads() == threads
        assert torch.equal(torch.rand(3), torch.rand(3, generator=expected))  # the caller's RNG stream is untouched
        states.append(model.state_dict())
    for name, tensor in states[0].items():
        assert torch.equal(tensor, states[1][name]), name


def test_warm_start_problems_are_not_the_rl_prompts() -> None:
    warm = {p.prompt for p in warmstart.warm_start_problems(64, int(warmstart.WARM_START["seed"]))}
    rl = [row["prompt"][0]["content"] for row in build_rows("math", "train", 256, 0)]
    assert warm and len(warm & set(rl)) < len(rl) // 2  # small operands overlap by chance, not by construction


def test_warm_started_model_answers_in_shape_and_sometimes_right(model_dir: Path) -> None:
    """Greedy on the first 64 tiny_math training prompts: every reply ends `#### <n>`, some but not all right (the
    room GRPO has to improve)."""
    model: Any = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    rows = build_rows("math", "train", 64, 0)
    texts = [tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=False) for r in rows]
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=32, do_sample=False)
    replies = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    assert sum(re.search(r"\n#### \d+$", r) is not None for r in replies) >= 60, replies[:4]
    score = _reward()
    correct = sum(score("x", r, row["reward_model"]["ground_truth"]) for r, row in zip(replies, rows, strict=True))
    # the warm start is byte-identical on one machine but not across CPUs (their float kernels differ): greedy
    # scored 9 of 64 on this session's machine, about 15 before; "some" is what GRPO needs
    assert 0.08 * len(rows) <= correct <= 0.85 * len(rows), (correct, replies[:4])
