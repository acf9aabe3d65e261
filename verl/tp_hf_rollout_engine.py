"""Token-in/token-out generation on plain transformers: the compute core of the `hf` rollout backend.

No Ray, no verl state: a batch of prompt token ids and one set of sampling parameters in, response token ids and
(optionally) per-token log-probs out. The server (`tp_hf_rollout_server`) batches concurrent requests onto it, and
weight sync writes into its model through `load_weights`.

Sampling follows vLLM's conventions as verl's agent loop sends them: `temperature == 0` means greedy, `top_k <= 0`
and `top_p >= 1` disable those filters, generation stops at any of the model's EOS ids (included in the output, as
vLLM does) unless `ignore_eos`. Log-probs follow `rollout.logprobs_mode`: ``processed_logprobs`` (vLLM's default) are
taken from the distribution actually sampled from (temperature, top-k and top-p applied), ``raw_logprobs`` from the
raw logits; with top-k/top-p off both equal what verl's actor recomputes (log_softmax(logits / temperature)).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig, PreTrainedModel, StoppingCriteria

LOGPROBS_MODES = ("processed_logprobs", "raw_logprobs", "processed_logits", "raw_logits")
_DTYPES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16,
           "float32": torch.float32, "fp32": torch.float32}  # fmt: skip


@dataclass(frozen=True)
class SamplingSpec:
    """One request's sampling parameters, normalised so equal specs can share a batch."""

    # softmax temperature; 0 means greedy decoding
    temperature: float = 1.0
    # nucleus sampling threshold; 1.0 disables it
    top_p: float = 1.0
    # keep only the k most likely tokens; <= 0 disables it
    top_k: int = -1
    # HF/vLLM repetition penalty; 1.0 disables it
    repetition_penalty: float = 1.0
    # most new tokens to generate
    max_new_tokens: int = 16
    # whether to return per-token log-probs of the sampled tokens
    logprobs: bool = False

    @classmethod
    def from_request(cls, params: dict[str, Any], max_new_tokens: int) -> SamplingSpec:
        """Build from the sampling_params dict verl's agent loop sends (vLLM names); unknown keys are ignored."""
        limit = params.get("max_tokens", params.get("max_new_tokens"))
        budget = max_new_tokens if limit is None else min(int(limit), max_new_tokens)
        top_k = params.get("top_k", -1)
        want = params.get("logprobs", False)
        return cls(
            temperature=float(params.get("temperature", 1.0) or 0.0),
            top_p=float(params.get("top_p", 1.0) if params.get("top_p") is not None else 1.0),
            top_k=-1 if top_k is None else int(top_k),
            repetition_penalty=float(params.get("repetition_penalty", 1.0) or 1.0),
            max_new_tokens=max(0, budget),
            # verl sends a bool; vLLM-style ints (0 = the sampled token's log-prob) also count as "requested"
            logprobs=want is True or (type(want) is int and want >= 0),
        )

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass
class GenerationResult:
    """One finished sequence."""

    token_ids: list[int]
    # log-prob of each token in token_ids (None when not requested)
    log_probs: list[float] | None
    # "stop" (hit EOS), "length" (hit max_new_tokens) or "abort" (interrupted)
    finish_reason: str


class _AbortCriteria(StoppingCriteria):
    """Stops a running batch when the server raises its abort event."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def resolve_dtype(name: str) -> torch.dtype:
    """Map a verl dtype string (`bfloat16`, `fp32`, ...) to a torch dtype."""
    if name not in _DTYPES:
        raise ValueError(f"rollout.dtype={name!r} is not supported by the hf rollout; use one of {sorted(_DTYPES)}")
    return _DTYPES[name]


class HFGenerationEngine:
    """A causal LM plus the stop/pad ids needed to run batched sampling on it."""

    def __init__(
        self,
        model: PreTrainedModel,
        eos_token_ids: list[int],
        pad_token_id: int,
        logprobs_mode: str = "processed_logprobs",
        ignore_eos: bool = False,
    ) -> None:
        if logprobs_mode not in LOGPROBS_MODES:
            raise ValueError(f"rollout.logprobs_mode={logprobs_mode!r}; the hf rollout supports {LOGPROBS_MODES}")
        self.model = model.eval()
        self.eos_token_ids = list(eos_token_ids)
        self.pad_token_id = pad_token_id
        self.logprobs_mode = logprobs_mode
        self.ignore_eos = ignore_eos
        self.abort_event = threading.Event()
        # A neutral generation config: nothing from the checkpoint's generation_config.json (top_k=20, ...) may leak
        # into sampling; every request states its own parameters.
        self.model.generation_config = GenerationConfig(eos_token_id=self.eos_token_ids, pad_token_id=pad_token_id)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        dtype: str = "bfloat16",
        load_format: str = "auto",
        trust_remote_code: bool = False,
        attn_implementation: str = "sdpa",
        logprobs_mode: str = "processed_logprobs",
        ignore_eos: bool = False,
    ) -> HFGenerationEngine:
        """Load the model from an HF folder; `load_format="dummy"` builds random weights (weight sync fills them)."""
        torch_dtype = resolve_dtype(dtype)
        hf_config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        kwargs: dict[str, Any] = {"attn_implementation": attn_implementation, "trust_remote_code": trust_remote_code}
        if load_format == "dummy":
            model = AutoModelForCausalLM.from_config(hf_config, dtype=torch_dtype, **kwargs)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, **kwargs)
        try:
            gen_eos = GenerationConfig.from_pretrained(path).eos_token_id
        except OSError:
            gen_eos = None
        eos_ids = _as_id_list(hf_config.eos_token_id) + [t for t in _as_id_list(gen_eos)]
        eos_ids = list(dict.fromkeys(eos_ids))
        if not eos_ids:
            raise ValueError(f"{path}: the model config names no eos_token_id; the hf rollout cannot stop at EOS")
        pad = hf_config.pad_token_id if getattr(hf_config, "pad_token_id", None) is not None else eos_ids[0]
        return cls(model, eos_ids, int(pad), logprobs_mode=logprobs_mode, ignore_eos=ignore_eos)

    @torch.no_grad()
    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
        """Copy HF-named tensors into the model in place (casting dtype); returns how many were loaded.

        A name the model does not have, or a shape mismatch, is an error: a weight sync can never be silently ignored.
        Tied weights (`lm_head.weight` aliasing the embeddings) are simply written twice.
        """
        state = self.model.state_dict(keep_vars=True)
        loaded = 0
        for name, tensor in named_tensors:
            target = state.get(name)
            if target is None:
                raise KeyError(f"weight sync sent {name!r}, which the rollout model does not have")
            if tuple(target.shape) != tuple(tensor.shape):
                shapes = f"{tuple(tensor.shape)} vs {tuple(target.shape)}"
                raise ValueError(f"weight sync shape mismatch for {name}: {shapes}")
            target.data.copy_(tensor.detach().to(device=target.device, dtype=target.dtype))
            loaded += 1
        return loaded

    @torch.no_grad()
    def generate_batch(self, prompts: list[list[int]], spec: SamplingSpec) -> list[GenerationResult]:
        """Generate one response per prompt with the same sampling parameters (left-padded batch)."""
        if not prompts:
            return []
        if spec.max_new_tokens <= 0:
            return [GenerationResult([], [] if spec.logprobs else None, "length") for _ in prompts]
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            input_ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            attention_mask[row, width - len(prompt) :] = 1
        device = next(self.model.parameters()).device
        raw = self.logprobs_mode.startswith("raw")
        out = self.model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            generation_config=self._generation_config(spec, raw),
            stopping_criteria=[_AbortCriteria(self.abort_event)],
        )
        new_tokens = out.sequences[:, width:].cpu()
        per_step = (out.logits if raw else out.scores) if spec.logprobs else None
        values = self._token_values(per_step, new_tokens) if per_step is not None else None
        aborted = self.abort_event.is_set()
        return [self._finish(new_tokens[row], values[row] if values is not None else None, spec, aborted)
                for row in range(len(prompts))]  # fmt: skip

    def _generation_config(self, spec: SamplingSpec, raw: bool) -> GenerationConfig:
        kwargs: dict[str, Any] = {
            "return_dict_in_generate": True,
            "output_scores": spec.logprobs and not raw,
            "output_logits": spec.logprobs and raw,
            "max_new_tokens": spec.max_new_tokens,
            "min_new_tokens": 0,
            "pad_token_id": self.pad_token_id,
            "eos_token_id": None if self.ignore_eos else self.eos_token_ids,
            "repetition_penalty": spec.repetition_penalty,
        }
        if spec.greedy:
            kwargs.update(do_sample=False, temperature=None, top_k=None, top_p=None)
        else:
            kwargs.update(
                do_sample=True,
                temperature=spec.temperature,
                # explicit "off" values: None would fall back to GenerationConfig's defaults (top_k=50)
                top_k=spec.top_k if spec.top_k > 0 else 0,
                top_p=spec.top_p if spec.top_p < 1.0 else 1.0,
            )
        return GenerationConfig(**kwargs)

    def _token_values(self, per_step: tuple[torch.Tensor, ...], new_tokens: torch.Tensor) -> torch.Tensor:
        """[batch, steps] log-prob (or logit) of each generated token under the chosen logprobs_mode."""
        stacked = torch.stack([s.float().cpu() for s in per_step], dim=1)  # [batch, steps, vocab]
        if self.logprobs_mode.endswith("logprobs"):
            stacked = torch.log_softmax(stacked, dim=-1)
        index = new_tokens[:, : stacked.shape[1]].unsqueeze(-1)
        return stacked.gather(-1, index).squeeze(-1)

    def _finish(
        self, tokens: torch.Tensor, values: torch.Tensor | None, spec: SamplingSpec, aborted: bool
    ) -> GenerationResult:
        ids = tokens.tolist()
        end, reason = len(ids), "length"
        if not self.ignore_eos:
            for pos, tok in enumerate(ids):
                if tok in self.eos_token_ids:
                    end, reason = pos + 1, "stop"
                    break
        if reason == "length" and aborted and end < spec.max_new_tokens:
            reason = "abort"
        log_probs = values[:end].tolist() if values is not None else None
        return GenerationResult(ids[:end], log_probs, reason)


def _as_id_list(value: int | list[int] | None) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]
