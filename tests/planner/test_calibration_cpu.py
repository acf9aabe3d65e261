"""CPU calibration of the terms that do not need a GPU (no GPU was available to calibrate the rest):
activations a decoder layer saves for backward (measured with autograd's saved-tensor hooks, bf16, sdpa), the
parameter count, and AdamW's optimizer-state bytes, on random-weight Qwen2 layers."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from trainer_platform.planner.arch import facts_from_config  # noqa: E402
from trainer_platform.planner.memory import ADAM_BYTES, activation_bytes_per_token_layer  # noqa: E402

SHAPES = [
    {"hidden_size": 256, "intermediate_size": 1024, "num_attention_heads": 4, "num_key_value_heads": 2},
    {"hidden_size": 384, "intermediate_size": 2048, "num_attention_heads": 6, "num_key_value_heads": 1},
]


def _model(shape: dict[str, int]):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(**shape, num_hidden_layers=2, vocab_size=1000, attn_implementation="sdpa")
    torch.manual_seed(0)
    return Qwen2ForCausalLM(cfg).to(torch.bfloat16)


def _saved_bytes_per_token(model, tokens: int) -> float:
    layer, hidden = model.model.layers[0], model.config.hidden_size
    x = torch.randn(1, tokens, hidden, dtype=torch.bfloat16, requires_grad=True)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params and ptr != x.untyped_storage().data_ptr():
            seen[ptr] = max(seen.get(ptr, 0), t.untyped_storage().nbytes())
        return t

    positions = torch.arange(tokens).unsqueeze(0)
    rotary = model.model.rotary_emb(x, positions)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(x, position_embeddings=rotary, attention_mask=None, position_ids=positions)
    return sum(seen.values()) / tokens


@pytest.mark.parametrize("shape", SHAPES, ids=["mha-ish", "gqa"])
def test_activation_formula_is_within_15_percent_above_the_measured_saved_tensors(shape: dict[str, int]) -> None:
    model = _model(shape)
    facts = facts_from_config({"model_type": "qwen2", "num_hidden_layers": 2, "vocab_size": 1000, **shape}, 0)
    measured = _saved_bytes_per_token(model, 256)
    estimated = activation_bytes_per_token_layer(facts)
    assert measured <= estimated <= 1.15 * measured, (measured, estimated)
    assert facts.params == sum(p.numel() for p in model.parameters())


def test_adamw_state_is_eight_bytes_per_fp32_parameter() -> None:
    model = _model(SHAPES[0]).float()
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randint(0, 1000, (1, 8)), labels=torch.randint(0, 1000, (1, 8))).loss.backward()
    optim.step()
    state = sum(v.numel() * v.element_size() for s in optim.state.values() for k, v in s.items() if k != "step")
    assert state == ADAM_BYTES * sum(p.numel() for p in model.parameters())
