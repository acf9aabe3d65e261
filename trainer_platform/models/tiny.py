"""The built-in tiny model: a ~99k-parameter Qwen2 causal LM with a byte-level BPE tokenizer, built offline.

A seeded init, warm-started by a short deterministic SFT on arithmetic (`trainer_platform.models.warmstart`) so the
default GRPO job has rewards to improve. `ensure_tiny_model()` materialises it once (~20 s on 2 quiet CPU cores)
under `<cache>/models/tiny-qwen2-<recipe hash>/` (HF format: config, safetensors weights, generation config,
tokenizer with a ChatML chat template, warm_start.json). The tokenizer is trained on text in the style of the tiny
datasets (`trainer_platform.data.tiny`). Two builds give byte-identical files; the build goes into a temporary
sibling folder that is renamed into place, so concurrent callers are safe.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from trainer_platform.cache import build_once
from trainer_platform.data.tiny import GENERATOR_VERSION, corpus_lines
from trainer_platform.models.warmstart import WARM_START, warm_start
from trainer_platform.paths import cache_dir

# Bump whenever the build changes in a way the constants below do not capture: it is part of the folder name.
RECIPE_VERSION = 2

ARCHITECTURE = "Qwen2ForCausalLM"
MODEL_TYPE = "qwen2"
HIDDEN_SIZE = 64
NUM_LAYERS = 2
NUM_HEADS = 4
NUM_KV_HEADS = 2
INTERMEDIATE_SIZE = 128
VOCAB_SIZE = 384  # the BPE trainer runs out of merges at ~400 on the small-operand corpus
MAX_POSITION_EMBEDDINGS = 2048
TIE_WORD_EMBEDDINGS = True
SEED = 0

BOS_TOKEN = "<|endoftext|>"
EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _param_count() -> int:
    head_dim = HIDDEN_SIZE // NUM_HEADS
    attention = (
        HIDDEN_SIZE * NUM_HEADS * head_dim
        + NUM_HEADS * head_dim  # q_proj with bias
        + 2 * (HIDDEN_SIZE * NUM_KV_HEADS * head_dim + NUM_KV_HEADS * head_dim)  # k_proj, v_proj with bias
        + NUM_HEADS * head_dim * HIDDEN_SIZE  # o_proj, no bias
    )
    mlp = 3 * HIDDEN_SIZE * INTERMEDIATE_SIZE
    layer = attention + mlp + 2 * HIDDEN_SIZE  # two RMSNorm weights
    embeddings = VOCAB_SIZE * HIDDEN_SIZE * (1 if TIE_WORD_EMBEDDINGS else 2)
    return embeddings + NUM_LAYERS * layer + HIDDEN_SIZE  # final norm


NUM_PARAMS = _param_count()


def recipe() -> dict[str, object]:
    """Everything the built files depend on (hashed into the folder name)."""
    return {
        "recipe_version": RECIPE_VERSION,
        "data_generator_version": GENERATOR_VERSION,
        "architecture": ARCHITECTURE,
        "hidden": HIDDEN_SIZE,
        "layers": NUM_LAYERS,
        "heads": NUM_HEADS,
        "kv_heads": NUM_KV_HEADS,
        "intermediate": INTERMEDIATE_SIZE,
        "vocab": VOCAB_SIZE,
        "max_positions": MAX_POSITION_EMBEDDINGS,
        "tie": TIE_WORD_EMBEDDINGS,
        "seed": SEED,
        "special_tokens": list(SPECIAL_TOKENS),
        "chat_template": CHAT_TEMPLATE,
        "warm_start": WARM_START,
    }


def recipe_hash() -> str:
    return hashlib.sha256(json.dumps(recipe(), sort_keys=True).encode()).hexdigest()[:12]


def _tokenizer_corpus() -> Iterator[str]:
    yield from corpus_lines()
    for role in ("system", "user", "assistant"):
        yield f"<|im_start|>{role}\n"
    yield "You are a helpful assistant."


def _build_tokenizer(out: Path) -> int:
    """Train the byte-level BPE tokenizer, save it as an HF fast tokenizer in `out`, return its vocab size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_tokenizer_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=MAX_POSITION_EMBEDDINGS,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    return len(fast)


def _build_model(out: Path, vocab_size: int, token_ids: dict[str, int]) -> None:
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=HIDDEN_SIZE,
        intermediate_size=INTERMEDIATE_SIZE,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=NUM_HEADS,
        num_key_value_heads=NUM_KV_HEADS,
        max_position_embeddings=MAX_POSITION_EMBEDDINGS,
        tie_word_embeddings=TIE_WORD_EMBEDDINGS,
        bos_token_id=token_ids[BOS_TOKEN],
        eos_token_id=token_ids[EOS_TOKEN],
        pad_token_id=token_ids[PAD_TOKEN],
        dtype="float32",
    )
    from transformers import AutoTokenizer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = Qwen2ForCausalLM(config)
    # the config goes in first: AutoTokenizer picks the tokenizer class from it (Qwen2's splits numbers into digits),
    # so the warm start tokenizes exactly as everyone who loads the finished folder does
    config.save_pretrained(out)
    losses = warm_start(model, AutoTokenizer.from_pretrained(out))
    model.save_pretrained(out, safe_serialization=True)
    record = {"settings": WARM_START, "first_loss": round(losses[0], 4), "last_loss": round(losses[-1], 4)}
    (out / "warm_start.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    GenerationConfig(
        bos_token_id=token_ids[BOS_TOKEN],
        eos_token_id=token_ids[EOS_TOKEN],
        pad_token_id=token_ids[PAD_TOKEN],
        max_new_tokens=32,
    ).save_pretrained(out)


def build_tiny_model(out: Path) -> None:
    """Write the warm-started tiny model (tokenizer, config, weights, generation config) into the folder `out`."""
    vocab_size = _build_tokenizer(out)
    with (out / "tokenizer.json").open() as f:
        vocab = json.load(f)["model"]["vocab"]
    added = {t: i for i, t in enumerate(SPECIAL_TOKENS)}  # trainer puts special tokens first, in this order
    token_ids = {t: vocab.get(t, added[t]) for t in SPECIAL_TOKENS}
    _build_model(out, vocab_size, token_ids)


def tiny_model_dir(cache_root: Path | None = None) -> Path:
    """Where the tiny model lives (built or not)."""
    return (cache_root or cache_dir()) / "models" / f"tiny-qwen2-{recipe_hash()}"


def ensure_tiny_model(cache_root: Path | None = None) -> Path:
    """Build the tiny model if it is not there yet and return its folder (loadable with AutoModelForCausalLM)."""
    return build_once(tiny_model_dir(cache_root), build_tiny_model)
