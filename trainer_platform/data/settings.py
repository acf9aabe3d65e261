"""The data group's settings for turning a user's files into verl's parquet: field mapping, split, bad-row policy.

Plain pydantic models (no I/O); `DataSpec` in spec.py holds them. conf/data/*.yaml documents each field.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldMap(_Strict):
    """Where each part of a verl row comes from in the source rows (dotted paths reach into nested fields)."""

    # SFT: chat turns (list of {role, content}; ShareGPT's {from, value} is read too)
    messages: str = "messages"
    # RL and DPO: the prompt (text or chat turns); SFT: the user turn when there is no messages field
    prompt: str = "prompt"
    # SFT: the assistant turn when there is no messages field
    response: str = "response"
    # system prompt put first when a row has none (null: none)
    system: str | None = None
    # RL: template of the user turn, `{prompt}` is replaced by the prompt text
    instruction: str | None = None
    # RL: the ground truth the reward compares with
    ground_truth: str = "reward_model.ground_truth"
    # RL: how the ground truth is taken out of that field: null (all of it), `boxed` (the last \boxed{...}),
    # or a regular expression whose first group is the answer (GSM8K: '####\s*(.+)$')
    ground_truth_pattern: str | None = None
    # RL: refuse a ground truth that is not a number (commas, $ and % allowed)
    ground_truth_numeric: bool = False
    # RL: the field naming the reward function's data source
    data_source: str = "data_source"
    # RL: data source of rows without that field
    data_source_default: str | None = None
    # RL: the field naming the task category verl's rows carry as `ability` (e.g. math)
    ability: str = "ability"
    # RL: ability of rows without that field (null: the data preset's name)
    ability_default: str | None = None
    # DPO: the preferred and the dispreferred answer (text, or whole conversations ending in the answer)
    chosen: str = "chosen"
    rejected: str = "rejected"


class SplitSettings(_Strict):
    """How a validation set is made when no validation files are given, and which split of a dataset dir is read."""

    # fraction of the training source held out for validation (0: none) when data.val_files is null
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.0
    # seed of the shuffle that picks the held-out rows
    seed: int = 0
    # split read from a Hugging Face dataset dir holding several (save_to_disk of a DatasetDict)
    train_name: str = "train"
    # split of that dir used for validation when data.val_files is null (null: none, or the held-out fraction)
    val_name: str | None = None


class BadRows(_Strict):
    """What happens to a source row that cannot become a verl row (missing/empty/wrong-typed field, bad JSON)."""

    # fail: stop at the first one, naming file, row and field; skip: drop them and count them
    policy: Literal["fail", "skip"] = "fail"
    # skip: the largest fraction of rows that may be dropped before the preparation fails anyway
    max_fraction: Annotated[float, Field(ge=0, le=1)] = 0.01
