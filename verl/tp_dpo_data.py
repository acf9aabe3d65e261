"""Preference data for the DPO trainer: parquet rows -> tokenised (chosen, rejected) pairs -> engine batches.

Row format (column names configurable by `data.prompt_key`, `data.chosen_key`, `data.rejected_key`):
`prompt` is a list of `{role, content}` chat messages, `chosen` and `rejected` are the assistant replies (strings).

Tokenisation of one response: `chat_template(prompt, add_generation_prompt=True)` tokenised without special tokens,
followed by `tokenizer(response, add_special_tokens=False)` and the tokenizer's EOS token. The prompt and the
response are tokenised separately (so no BPE merge crosses their boundary) and the prompt ids are shared by both
responses of a pair. The loss mask is 1 exactly on the response tokens and the EOS.

Truncation (`data.truncation`, applied to each response's sequence when `len(prompt) + len(response) >
data.max_length`):
- `error` (default): raise, naming the row.
- `left`: drop tokens from the start of the prompt (the end of the prompt, next to the response, is kept); if the
  response alone is longer than `max_length - 1`, its tail is cut too, keeping one prompt token.
- `right`: cut the tail of the response (its EOS may be lost); if the prompt alone leaves no room for one response
  token, the prompt is cut from the left first.
Every kept sequence has at least one prompt token and one response token.

Batches: pairs are interleaved `[chosen_0, rejected_0, chosen_1, ...]` as nested (jagged) tensors in verl's
`no_padding` layout (`input_ids`, `position_ids`, `loss_mask`), plus per-sequence `index`, `is_chosen` and `ref_logps`
(the cached reference log-prob, 0 until set); the engine keeps each pair in one micro-batch (`force_group_size=2`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch.utils.data import Dataset

TRUNCATION_MODES = ("error", "left", "right")


@dataclass(frozen=True)
class PairEncoding:
    """Token ids and response masks of one preference pair."""

    chosen_ids: list[int]
    chosen_mask: list[int]
    rejected_ids: list[int]
    rejected_mask: list[int]


def _fit(prompt: list[int], response: list[int], max_length: int, truncation: str, row: int) -> tuple[list, list]:
    """Apply the truncation rule (module docstring) to one prompt + response."""
    if len(prompt) + len(response) <= max_length:
        return prompt, response
    if truncation == "error":
        raise ValueError(
            f"row {row}: prompt ({len(prompt)}) + response ({len(response)}) tokens exceed data.max_length="
            f"{max_length}; raise max_length or set data.truncation=left|right"
        )
    if truncation == "left":
        response = response[: max_length - 1]
        return prompt[-(max_length - len(response)) :], response
    # right
    prompt = prompt[-(max_length - 1) :]
    return prompt, response[: max_length - len(prompt)]


def encode_pair(
    tokenizer: Any,
    prompt: Sequence[dict[str, str]],
    chosen: str,
    rejected: str,
    *,
    max_length: int,
    truncation: str = "error",
    chat_template_kwargs: dict[str, Any] | None = None,
    row: int = -1,
) -> PairEncoding:
    """Tokenise one pair (rules in the module docstring)."""
    if truncation not in TRUNCATION_MODES:
        raise ValueError(f"data.truncation must be one of {TRUNCATION_MODES}, got {truncation!r}")
    if max_length < 2:
        raise ValueError(f"data.max_length must be >= 2, got {max_length}")
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos_token_id")
    text = tokenizer.apply_chat_template(
        [dict(m) for m in prompt], add_generation_prompt=True, tokenize=False, **(chat_template_kwargs or {})
    )
    prompt_ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if not prompt_ids:
        raise ValueError(f"row {row}: the prompt tokenises to nothing")
    out: list[tuple[list[int], list[int]]] = []
    for response in (chosen, rejected):
        response_ids = list(tokenizer(response, add_special_tokens=False)["input_ids"]) + [tokenizer.eos_token_id]
        p, r = _fit(prompt_ids, response_ids, max_length, truncation, row)
        out.append((p + r, [0] * len(p) + [1] * len(r)))
    return PairEncoding(chosen_ids=out[0][0], chosen_mask=out[0][1], rejected_ids=out[1][0], rejected_mask=out[1][1])


def _to_messages(value: Any) -> list[dict[str, str]]:
    """A parquet cell of chat messages (numpy array of dicts, or list) as a plain list of dicts."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in list(value)]


class PreferenceDataset(Dataset):
    """Pairs from one or more preference parquet files, tokenised on access.

    `set_reference_logps(chosen, rejected)` attaches the cached reference log-probs (one per pair, dataset order);
    they travel with each item as `ref_logps`.
    """

    def __init__(self, parquet_files: str | Sequence[str], tokenizer: Any, config: Any, max_samples: int = -1) -> None:
        files = [parquet_files] if isinstance(parquet_files, str) else list(parquet_files)
        frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        self.prompt_key = config.get("prompt_key", "prompt")
        self.chosen_key = config.get("chosen_key", "chosen")
        self.rejected_key = config.get("rejected_key", "rejected")
        missing = [k for k in (self.prompt_key, self.chosen_key, self.rejected_key) if k not in frame.columns]
        if missing:
            raise ValueError(f"preference data {files} lacks columns {missing}; it has {list(frame.columns)}")
        if max_samples is not None and max_samples > 0:
            frame = frame.iloc[:max_samples].reset_index(drop=True)
        self.frame = frame
        self.tokenizer = tokenizer
        self.max_length = int(config.get("max_length", 1024))
        self.truncation = str(config.get("truncation", "error"))
        kwargs = config.get("apply_chat_template_kwargs", None)
        self.chat_template_kwargs = dict(kwargs) if kwargs else {}
        self.ref_chosen: torch.Tensor | None = None
        self.ref_rejected: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.frame)

    def set_reference_logps(self, chosen: torch.Tensor, rejected: torch.Tensor) -> None:
        """Attach reference log-probs, shape `[len(self)]` each."""
        if chosen.shape != (len(self),) or rejected.shape != (len(self),):
            raise ValueError(f"reference log-probs must have shape ({len(self)},)")
        self.ref_chosen, self.ref_rejected = chosen.float().cpu(), rejected.float().cpu()

    def encode(self, index: int) -> PairEncoding:
        row = self.frame.iloc[index]
        return encode_pair(
            self.tokenizer,
            _to_messages(row[self.prompt_key]),
            str(row[self.chosen_key]),
            str(row[self.rejected_key]),
            max_length=self.max_length,
            truncation=self.truncation,
            chat_template_kwargs=self.chat_template_kwargs,
            row=index,
        )

    def __getitem__(self, index: int) -> dict[str, Any]:
        enc = self.encode(index)
        ref_c = float(self.ref_chosen[index]) if self.ref_chosen is not None else 0.0
        ref_r = float(self.ref_rejected[index]) if self.ref_rejected is not None else 0.0
        return {"index": index, "encoding": enc, "ref_logps": (ref_c, ref_r)}


def collate_pairs(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Interleave pairs into one batch of 2 * len(items) sequences in verl's no_padding layout."""
    ids: list[torch.Tensor] = []
    masks: list[torch.Tensor] = []
    index: list[int] = []
    is_chosen: list[int] = []
    ref: list[float] = []
    for item in items:
        enc: PairEncoding = item["encoding"]
        for k, (seq, mask) in enumerate(((enc.chosen_ids, enc.chosen_mask), (enc.rejected_ids, enc.rejected_mask))):
            ids.append(torch.tensor(seq, dtype=torch.long))
            masks.append(torch.tensor(mask, dtype=torch.long))
            index.append(int(item["index"]))
            is_chosen.append(1 - k)
            ref.append(float(item["ref_logps"][k]))
    return {
        "input_ids": torch.nested.as_nested_tensor(ids, layout=torch.jagged),
        "position_ids": torch.nested.as_nested_tensor(
            [torch.arange(t.numel(), dtype=torch.long) for t in ids], layout=torch.jagged
        ),
        "loss_mask": torch.nested.as_nested_tensor(masks, layout=torch.jagged),
        "index": torch.tensor(index, dtype=torch.long),
        "is_chosen": torch.tensor(is_chosen, dtype=torch.long),
        "ref_logps": torch.tensor(ref, dtype=torch.float32),
    }
