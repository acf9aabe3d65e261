"""Vocabulary edits: add tokens (special or not) or resize to a size; embeddings and an untied lm_head grow by rows
initialised to the mean of the existing rows (or of the rows of `init_from`'s tokens); old rows are untouched, so
the old tokens' logits do not change. The tokenizer is saved alongside and config.json's vocab_size updated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import cast

import torch

from trainer_platform.errors import SpecError
from trainer_platform.surgery import steps as S
from trainer_platform.surgery.ops import _EMBED_NAMES, _HEAD_NAMES, Program, _out_dtype
from trainer_platform.surgery.sources import read_config
from trainer_platform.surgery.tensors import Checkpoint, OutTensor, passthrough, row_chunks


def _find(ck: Checkpoint, suffixes: tuple[str, ...]) -> str | None:
    return next((n for n in ck.infos if n.endswith(suffixes) and len(ck.infos[n].shape) == 2), None)


def _mean_rows(t: torch.Tensor, ids: list[int] | None) -> torch.Tensor:
    if ids:
        return t[torch.tensor(ids)].float().mean(0)
    acc = torch.zeros(t.shape[1], dtype=torch.float64)
    for rows in row_chunks(tuple(t.shape)):
        acc += t[rows].double().sum(0)
    return (acc / t.shape[0]).float()


def _grown(ck: Checkpoint, name: str, new_rows: int, init_ids: list[int] | None, dtype: torch.dtype) -> OutTensor:
    info = ck.infos[name]
    old_rows, width = info.shape

    def chunks() -> Iterator[torch.Tensor]:
        t = ck.tensor(name)
        keep = min(old_rows, new_rows)
        for rows in row_chunks((keep, width)):
            yield t[rows]
        if new_rows > old_rows:
            yield _mean_rows(t, init_ids).to(dtype).expand(new_rows - old_rows, width)

    return OutTensor(name, (new_rows, width), dtype, chunks)


def vocab_program(step: S.AddTokensOp | S.ResizeVocabOp, path: Path, dtype: str) -> Program:
    from transformers import AutoTokenizer

    config = read_config(path)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise SpecError(
            str(path), f"has no loadable tokenizer ({exc})", "vocabulary edits need the tokenizer"
        ) from None
    ck = Checkpoint(path)
    embed = _find(ck, _EMBED_NAMES)
    if embed is None:
        raise SpecError(str(path), "has no input embedding tensor (embed_tokens.weight)", "")
    head = _find(ck, _HEAD_NAMES)
    old_rows = ck.infos[embed].shape[0]
    init_ids: list[int] | None = None
    if isinstance(step, S.AddTokensOp):
        if step.init_from:
            init_ids = tok(step.init_from, add_special_tokens=False)["input_ids"]
            if not init_ids:
                raise SpecError("surgery.init_from", "tokenizes to no tokens", "give a non-empty text")
        existing = [t for t in step.tokens if t in tok.get_vocab()]
        if existing:
            raise SpecError("surgery.tokens", f"{existing[0]!r} is already in the vocabulary", "remove it")
        if step.special:
            tok.add_special_tokens({"additional_special_tokens": list(step.tokens)}, replace_extra_special_tokens=False)
        else:
            tok.add_tokens(list(step.tokens))
        size = max(old_rows, len(tok))
        if step.pad_to_multiple_of:
            size = -(-size // step.pad_to_multiple_of) * step.pad_to_multiple_of
        # tokens that land on padding rows an embedding already had get the mean too: re-initialise them
        new_ids = cast(list[int], tok.convert_tokens_to_ids(list(step.tokens)))
        reinit = [i for i in new_ids if i < old_rows]
    else:
        size, reinit = step.size, list[int]()
        if size < len(tok):
            raise SpecError("surgery.size", f"{size} is smaller than the tokenizer's {len(tok)} tokens", "")
    tensors: list[OutTensor] = []
    for name, info in ck.infos.items():
        out_dtype = _out_dtype(dtype, info.dtype)
        if name in (embed, head):
            grown = _grown(ck, name, size, init_ids, out_dtype)
            tensors.append(_reinit(ck, grown, reinit, init_ids) if reinit else grown)
        else:
            tensors.append(passthrough(name, ck, out_dtype))
    updates: dict[str, object] = {"vocab_size": size}
    if config.get("text_config", {}).get("vocab_size"):
        updates["text_config"] = {**config["text_config"], "vocab_size": size}
    return Program(tensors, files_from=path, config_updates=updates, tokenizer=tok)


def _reinit(ck: Checkpoint, grown: OutTensor, ids: list[int], init_ids: list[int] | None) -> OutTensor:
    def chunks() -> Iterator[torch.Tensor]:
        mean = _mean_rows(ck.tensor(grown.name), init_ids).to(grown.dtype)
        start = 0
        for chunk in grown.chunks():
            chunk = chunk.clone()
            for i in ids:
                if start <= i < start + chunk.shape[0]:
                    chunk[i - start] = mean
            start += chunk.shape[0]
            yield chunk

    return OutTensor(grown.name, grown.shape, grown.dtype, chunks)
