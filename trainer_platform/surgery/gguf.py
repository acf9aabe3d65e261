"""GGUF -> HF: transformers dequantises the GGUF (`gguf_file=`, needs the `gguf` package); its tensors are then
written like every other output (sharded safetensors with an index), with the GGUF's tokenizer and chat template."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

from trainer_platform.errors import SpecError
from trainer_platform.surgery.ops import Program
from trainer_platform.surgery.tensors import OutTensor


def gguf_program(file: Path, dtype: str, work: Path) -> Program:
    """Load `file` with transformers; the program writes its tensors, `work` gets the config and tokenizer files."""
    import importlib.util

    if not file.is_file():
        raise SpecError(str(file), "no such GGUF file", "give the path of a .gguf file")
    if importlib.util.find_spec("gguf") is None:
        raise SpecError(str(file), "reading GGUF needs the `gguf` package", "pip install gguf")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(file.parent, gguf_file=file.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(file.parent, gguf_file=file.name)
    if tokenizer.chat_template is None:
        raise SpecError(str(file), "carries no chat template", "use a GGUF with tokenizer.chat_template metadata")
    work.mkdir(parents=True, exist_ok=True)
    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(work)
    if model.generation_config is not None:
        model.generation_config.save_pretrained(work)
    state = model.state_dict()
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    tensors = []
    for name, value in state.items():
        if tied and name == "lm_head.weight":
            continue
        out_dtype = value.dtype if dtype == "auto" or not value.is_floating_point() else getattr(torch, dtype)

        def chunks(value: torch.Tensor = value) -> Iterator[torch.Tensor]:
            yield value

        tensors.append(OutTensor(name, tuple(value.shape), out_dtype, chunks))
    return Program(tensors, files_from=work, tokenizer=tokenizer)
