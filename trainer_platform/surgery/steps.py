"""SurgerySpec: the typed form of the `surgery` config group (pydantic only: importing it loads no torch).

`surgery.steps` is an ordered list of operations, a discriminated union on `op`. Keys at the top of the group that
are not the group's own settings (`models`, `t`, `density`, ...) are shared parameters: they fill the field of that
name in every step that leaves it out, so `surgery=slerp surgery.models=[A,B] surgery.t=0.3` sets the preset's step.

A model source is a string: an HF directory, a verl checkpoint (`.../global_step_N`), a run directory (`RUN` = its
last checkpoint, `RUN@step=N`, `RUN@best=METRIC:max|min`), `@model` (the model group's model) or `@prev` (the
previous step's output; the default input of single-model steps after the first).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from trainer_platform.errors import SpecError

Unit = Annotated[float, Field(ge=0, le=1)]
Density = Annotated[float, Field(gt=0, le=1)]
PositiveInt = Annotated[int, Field(gt=0)]


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def sources(self) -> tuple[str, ...]:
        """Every model source this step reads, in order (the first one gives config and tokenizer)."""
        names = ("base", "model", "models")
        out: list[str] = []
        for name in names:
            value = getattr(self, name, None)
            if isinstance(value, str):
                out.append(value)
            elif isinstance(value, tuple):
                out.extend(v for v in value if v not in out)
        return tuple(out)


def _check_weights(key: str, weights: tuple[float, ...] | None, n: int, normalize: bool) -> None:
    if weights is None:
        return
    if len(weights) != n:
        raise ValueError(f"{key}: {len(weights)} weights for {n} models; give one weight per model")
    total = sum(weights)
    if normalize and total <= 1e-8:
        raise ValueError(f"{key}: weights sum to {total:g}; with normalize=true they must sum to a positive number")
    if not normalize and not math.isclose(total, 1.0, abs_tol=1e-3) and key == "linear":
        raise ValueError(f"linear: weights sum to {total:g}, not 1; fix them or set normalize=true")


class LinearOp(_Op):
    op: Literal["linear"]
    models: Annotated[tuple[str, ...], Field(min_length=2)]
    weights: tuple[float, ...] | None = None
    normalize: bool = True

    @model_validator(mode="after")
    def _weights(self) -> LinearOp:
        _check_weights("linear", self.weights, len(self.models), self.normalize)
        return self


class _DeltaOp(_Op):
    """Merges of task vectors (model - base)."""

    base: str
    models: Annotated[tuple[str, ...], Field(min_length=1)]
    weights: tuple[float, ...] | None = None
    # scale applied to the merged task vector
    scale: float = 1.0

    @model_validator(mode="after")
    def _weights(self) -> _DeltaOp:
        _check_weights(self.op, self.weights, len(self.models), getattr(self, "normalize", False))  # type: ignore[attr-defined]
        return self


class TaskArithmeticOp(_DeltaOp):
    op: Literal["task_arithmetic"]
    normalize: bool = False


class TiesOp(_DeltaOp):
    op: Literal["ties"]
    density: Density
    normalize: bool = True


class DareOp(_DeltaOp):
    op: Literal["dare"]
    density: Density
    merge: Literal["ties", "linear"] = "ties"
    seed: int = 0
    normalize: bool = False


class BreadcrumbsOp(_DeltaOp):
    op: Literal["breadcrumbs"]
    density: Density
    gamma: Annotated[float, Field(ge=0, lt=1)] = 0.01
    merge: Literal["ties", "linear"] = "linear"
    normalize: bool = False


class SlerpOp(_Op):
    op: Literal["slerp"]
    models: Annotated[tuple[str, str], Field(description="t=0 gives the first, t=1 the second")]
    t: Unit | Annotated[tuple[Unit, ...], Field(min_length=1)]


class LoraMergeOp(_Op):
    op: Literal["lora_merge"]
    adapter: str
    # null = the adapter's own base_model_name_or_path (or @prev / @model)
    base: str | None = None


class AverageOp(_Op):
    op: Literal["average"]
    run: str
    last: PositiveInt | None = None
    ema: Annotated[float, Field(gt=0, lt=1)] | None = None


class CopyOp(_Op):
    op: Literal["copy"]
    model: str = "@prev"


class AddTokensOp(_Op):
    op: Literal["add_tokens"]
    model: str = "@prev"
    tokens: Annotated[tuple[str, ...], Field(min_length=1)]
    special: bool = False
    init_from: str | None = None
    pad_to_multiple_of: PositiveInt | None = None


class ResizeVocabOp(_Op):
    op: Literal["resize_vocab"]
    model: str = "@prev"
    size: PositiveInt


class DropLayersOp(_Op):
    op: Literal["drop_layers"]
    model: str = "@prev"
    layers: Annotated[tuple[Annotated[int, Field(ge=0)], ...], Field(min_length=1)]


class UpscaleDepthOp(_Op):
    op: Literal["upscale_depth"]
    model: str = "@prev"
    ranges: Annotated[tuple[tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]], ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _ranges(self) -> UpscaleDepthOp:
        for start, end in self.ranges:
            if end <= start:
                raise ValueError(f"upscale_depth: range [{start}, {end}) is empty; write [start, end) with end > start")
        return self


class GgufImportOp(_Op):
    op: Literal["gguf_import"]
    file: str


Step = Annotated[
    LinearOp
    | TaskArithmeticOp
    | TiesOp
    | DareOp
    | BreadcrumbsOp
    | SlerpOp
    | LoraMergeOp
    | AverageOp
    | CopyOp
    | AddTokensOp
    | ResizeVocabOp
    | DropLayersOp
    | UpscaleDepthOp
    | GgufImportOp,
    Field(discriminator="op"),
]
OP_CLASSES: dict[str, type[_Op]] = {
    cls.model_fields["op"].annotation.__args__[0]: cls  # type: ignore[union-attr]
    for cls in (
        LinearOp,
        TaskArithmeticOp,
        TiesOp,
        DareOp,
        BreadcrumbsOp,
        SlerpOp,
        LoraMergeOp,
        AverageOp,
        CopyOp,
        AddTokensOp,
        ResizeVocabOp,
        DropLayersOp,
        UpscaleDepthOp,
        GgufImportOp,
    )
}
_OWN = ("steps", "output", "dtype", "max_shard_size_mb")


class SurgerySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: tuple[Step, ...] = ()
    output: str | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    max_shard_size_mb: Annotated[float, Field(gt=0)] = 2048

    @model_validator(mode="before")
    @classmethod
    def _fill_shared(cls, data: Any) -> Any:
        """Shared top-level parameters fill the steps' missing fields; one that no step takes is refused."""
        if not isinstance(data, dict):
            return data
        shared = {k: v for k, v in data.items() if k not in _OWN}
        if not shared:
            return data
        steps = [dict(s) if isinstance(s, dict) else s for s in data.get("steps") or ()]
        used: set[str] = set()
        for step in steps:
            op_cls = OP_CLASSES.get(str(step.get("op"))) if isinstance(step, dict) else None
            if op_cls is None:
                continue
            for key, value in shared.items():
                if key in op_cls.model_fields and value is not None:
                    used.add(key)
                    step.setdefault(key, value)
                elif key in op_cls.model_fields:
                    used.add(key)
        unused = sorted(set(shared) - used)
        if unused:
            ops = ", ".join(str(s.get("op")) for s in steps if isinstance(s, dict)) or "none"
            raise SpecError(
                f"surgery.{unused[0]}",
                f"no step of this surgery takes {unused[0]!r} (steps: {ops})",
                "remove it, or pick the surgery preset whose operation uses it",
            )
        return {**{k: v for k, v in data.items() if k in _OWN}, "steps": steps}

    @model_validator(mode="after")
    def _settings_need_steps(self) -> SurgerySpec:
        """Output settings of a surgery without steps would change nothing: refuse them rather than ignore them."""
        if not self.steps:
            for key in ("output", "dtype", "max_shard_size_mb"):
                if key in self.model_fields_set and getattr(self, key) != SurgerySpec.model_fields[key].default:
                    raise SpecError(
                        f"surgery.{key}",
                        "has no effect: this surgery has no steps (surgery=none)",
                        "pick a surgery preset (trainer-platform presets surgery), or drop the setting",
                    )
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.steps)
