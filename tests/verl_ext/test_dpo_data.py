"""Tokenisation, masking, truncation and batching of preference pairs (verl/tp_dpo_data.py) on the tiny model."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from trainer_platform.models.tiny import ensure_tiny_model
from trainer_platform.paths import verl_ext_dir

sys.path.insert(0, str(verl_ext_dir()))

from tp_dpo_data import PreferenceDataset, collate_pairs, encode_pair  # noqa: E402

PROMPT = [{"role": "user", "content": "What is 2 + 3?"}]
CHOSEN = "2 + 3 = 5.\n#### 5"
REJECTED = "2 + 3 = 6.\n#### 6"


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(ensure_tiny_model())  # the session's shared cache: built once


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_prompt_is_chat_template_and_mask_covers_response_and_eos(tokenizer: Any) -> None:
    enc = encode_pair(tokenizer, PROMPT, CHOSEN, REJECTED, max_length=256)
    prompt_text = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=False)
    prompt_ids = _ids(tokenizer, prompt_text)
    assert prompt_text.endswith("<|im_start|>assistant\n")
    for ids, mask, response in (
        (enc.chosen_ids, enc.chosen_mask, CHOSEN),
        (enc.rejected_ids, enc.rejected_mask, REJECTED),
    ):
        response_ids = _ids(tokenizer, response) + [tokenizer.eos_token_id]
        assert ids == prompt_ids + response_ids
        assert mask == [0] * len(prompt_ids) + [1] * len(response_ids)
        assert tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m]) == response + tokenizer.eos_token


def test_truncation_rules(tokenizer: Any) -> None:
    full = encode_pair(tokenizer, PROMPT, CHOSEN, REJECTED, max_length=256)
    n_prompt = full.chosen_mask.count(0)
    n_response = full.chosen_mask.count(1)
    limit = n_prompt + n_response - 3
    with pytest.raises(ValueError, match="max_length"):
        encode_pair(tokenizer, PROMPT, CHOSEN, REJECTED, max_length=limit, truncation="error", row=7)
    left = encode_pair(tokenizer, PROMPT, CHOSEN, REJECTED, max_length=limit, truncation="left")
    assert len(left.chosen_ids) == limit
    assert left.chosen_ids[-n_response:] == full.chosen_ids[-n_response:]  # response kept whole
    assert left.chosen_mask.count(1) == n_response
    right = encode_pair(tokenizer, PROMPT, CHOSEN, REJECTED, max_length=limit, truncation="right")
    assert right.chosen_ids == full.chosen_ids[:limit]  # prompt kept, response tail (and EOS) cut
    assert right.chosen_mask.count(0) == n_prompt
    tiny = encode_pair(tokenizer, PROMPT, CHOSEN, REJECTED, max_length=2, truncation="left")
    assert tiny.chosen_mask == [0, 1] and tiny.rejected_mask == [0, 1]


def test_dataset_and_interleaved_batch(tokenizer: Any, tmp_path: Path) -> None:
    rows = [
        {"q": [{"role": "user", "content": f"What is {i} + 1?"}], "good": f"#### {i + 1}", "bad": f"#### {i}"}
        for i in range(3)
    ]
    path = tmp_path / "pref.parquet"
    pd.DataFrame(rows).to_parquet(path)
    config = OmegaConf.create({"prompt_key": "q", "chosen_key": "good", "rejected_key": "bad", "max_length": 64})
    dataset = PreferenceDataset(str(path), tokenizer, config)
    assert len(dataset) == 3
    dataset.set_reference_logps(torch.tensor([-1.0, -2.0, -3.0]), torch.tensor([-4.0, -5.0, -6.0]))
    batch = collate_pairs([dataset[2], dataset[0]])
    assert batch["is_chosen"].tolist() == [1, 0, 1, 0]
    assert batch["index"].tolist() == [2, 2, 0, 0]
    assert batch["ref_logps"].tolist() == [-3.0, -6.0, -1.0, -4.0]
    enc = dataset.encode(2)
    seqs = batch["input_ids"].unbind()
    assert seqs[0].tolist() == enc.chosen_ids and seqs[1].tolist() == enc.rejected_ids
    assert batch["loss_mask"].unbind()[1].tolist() == enc.rejected_mask
    assert [p.tolist() for p in batch["position_ids"].unbind()] == [list(range(len(s))) for s in seqs]
    with pytest.raises(ValueError, match="lacks columns"):
        PreferenceDataset(str(path), tokenizer, OmegaConf.create({"max_length": 64}))
