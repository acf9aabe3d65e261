"""prepare(spec): make the model and data a job needs exist on disk and say where they are.

Built-in tiny models and datasets are materialised into the cache (offline, deterministic). User files are
used in place. `materialize=False` (dry runs) only computes the paths: nothing that needs torch is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainer_platform.spec import RunSpec


@dataclass(frozen=True)
class Prepared:
    """Where the prepared model and data are."""

    # model directory (or hub id) verl loads
    model_path: str
    # training parquet files, absolute
    train_files: tuple[str, ...]
    # validation parquet files, absolute (may be empty)
    val_files: tuple[str, ...]
    # rows in the training files, when they are readable here
    train_rows: int | None


def prepare(spec: RunSpec, *, materialize: bool = True) -> Prepared:
    """Resolve (and, unless `materialize` is False, build) the model and data of a spec."""
    return Prepared(
        model_path=_model_path(spec, materialize),
        train_files=_train_files(spec),
        val_files=_val_files(spec),
        train_rows=_rows(_train_files(spec)),
    )


def _model_path(spec: RunSpec, materialize: bool) -> str:
    base = base_model_path(spec, materialize)
    if spec.surgery.enabled:
        from trainer_platform.surgery.prepare import prepare_surgery

        return str(prepare_surgery(spec.surgery, base, materialize))
    return base


def base_model_path(spec: RunSpec, materialize: bool) -> str:
    """The model group's model (before any surgery): a built-in one is built unless `materialize` is False."""
    if spec.model.builtin == "smollm2_135m":
        from trainer_platform.models import smollm2

        return str(smollm2.ensure_smollm2() if materialize else smollm2.smollm2_dir())
    if spec.model.builtin == "tiny":
        from trainer_platform.models import tiny

        return str(tiny.ensure_tiny_model() if materialize else tiny.tiny_model_dir())
    assert spec.model.path is not None  # checked by the spec
    return str(Path(spec.model.path).expanduser().resolve()) if spec.model.is_local_path else spec.model.path


def _builtin_data(spec: RunSpec):  # -> TinyDataset
    from trainer_platform.data.tiny import ensure_tiny_dataset

    rows = spec.data.builtin_rows
    assert spec.data.builtin is not None
    if rows is None:
        return ensure_tiny_dataset(spec.data.builtin)
    return ensure_tiny_dataset(spec.data.builtin, n_train=rows.train, n_val=rows.val, seed=rows.seed)


def _train_files(spec: RunSpec) -> tuple[str, ...]:
    if spec.data.builtin is not None:
        return (str(_builtin_data(spec).train),)
    return tuple(str(Path(f).expanduser().resolve()) for f in spec.data.train_files or ())


def _val_files(spec: RunSpec) -> tuple[str, ...]:
    if spec.data.builtin is not None:
        return (str(_builtin_data(spec).val),)
    return tuple(str(Path(f).expanduser().resolve()) for f in spec.data.val_files or ())


def _rows(files: tuple[str, ...]) -> int | None:
    """Row count from parquet metadata (no data read); None if a file is not readable here."""
    import pyarrow.parquet as pq

    try:
        return sum(pq.read_metadata(f).num_rows for f in files)
    except (OSError, ValueError):
        return None
