"""Load verl's critic (value model) without flash-attn, so PPO's critic trains on machines without it (CPU).

verl 0.9.1's `verl.utils.model.load_valuehead_model` hard-codes `attn_implementation="flash_attention_2"` and ignores
the critic's `override_config`; without flash-attn it falls back to `trl`'s value head, which is not a dependency.
No extension point covers it, so this module (imported by verl through `VERL_USE_EXTERNAL_MODULES` when the job has a
critic and runs on CPU) wraps that one function: with flash-attn available it delegates unchanged, otherwise it loads
the same `AutoModelForTokenClassification` value model with sdpa attention.
"""

from __future__ import annotations

import functools
from typing import Any

import verl.utils.model as model_utils

_MARK = "_tp_valuehead_without_flash_attn"


def _without_flash_attn(original: Any) -> Any:
    @functools.wraps(original)
    def load_valuehead_model(local_path: str, torch_dtype: Any, model_config: Any, trust_remote_code: bool) -> Any:
        from transformers import AutoModelForTokenClassification
        from transformers.utils import is_flash_attn_2_available

        if is_flash_attn_2_available():
            return original(local_path, torch_dtype, model_config, trust_remote_code)
        return AutoModelForTokenClassification.from_pretrained(
            local_path,
            dtype=torch_dtype,
            config=model_config,
            attn_implementation="sdpa",
            trust_remote_code=trust_remote_code,
        )

    return load_valuehead_model


def install() -> None:
    """Wrap verl's value-model loader once per process (idempotent)."""
    if not getattr(model_utils, _MARK, False):
        model_utils.load_valuehead_model = _without_flash_attn(model_utils.load_valuehead_model)
        setattr(model_utils, _MARK, True)


install()
