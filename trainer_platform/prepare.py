"""prepare(spec): make the model and data a job needs exist on disk and say where they are.

Built-in tiny models and datasets are materialised into the cache (offline, deterministic). User files are
used in place. `materialize=False` (dry runs) only computes the paths: nothing that needs torch is imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    # the data preparation's report (content hash, row counts; data/build.py), empty for built-in data; for a dry
    # run, what is known about the data without preparing it (data/facts.py)
    data: dict = field(default_factory=dict)


def prepare(spec: RunSpec, *, materialize: bool = True) -> Prepared:
    """Resolve (and, unless `materialize` is False, build) the model and data of a spec."""
    model_path = _model_path(spec, materialize)
    train, val, rows, report = _data_files(spec, model_path, materialize)
    return Prepared(model_path=model_path, train_files=train, val_files=val, train_rows=rows, data=report)


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


def _data_files(
    spec: RunSpec, model_path: str, materialize: bool
) -> tuple[tuple[str, ...], tuple[str, ...], int | None, dict]:
    """(train files, val files, training rows (None: unknown here), report) verl reads. Built-in data is generated;
    a user's sources are converted into the cache (data/build.py), or, for a dry run, named by the content hash they
    would get. Sources not on this machine (a launcher that runs the job elsewhere) are passed on as they are. The
    report is the preparation's (content hash, row counts; none for built-in data) or, for a dry run, what is known
    about the data without preparing it (data/facts.py: sources, mapping, cache key and whether it is cached, rows,
    reward). The training rows come from the recipe or the report, never from reading the files."""
    from trainer_platform.data import facts

    data = spec.data
    if data.builtin is not None:
        built = _builtin_data(spec)
        report = {} if materialize else facts.builtin_data_facts(data, built.train_rows, built.val_rows)
        return (str(built.train),), (str(built.val),), built.train_rows, report
    train = tuple(str(Path(f).expanduser().resolve()) for f in data.train_files or ())
    val = tuple(str(Path(f).expanduser().resolve()) for f in data.val_files or ())
    if not all(Path(f).exists() for f in (*train, *val)):
        return train, val, None, ({} if materialize else facts.missing_data_facts(data))
    request = data_request(spec, model_path, train, val)
    if materialize:
        from trainer_platform.data.build import prepare_data

        done = prepare_data(request)
        return (str(done.train),), ((str(done.val),) if done.val else ()), int(done.counts["train"]), done.counts
    known = facts.user_data_facts(data, request)
    folder = Path(known["cache_dir"])
    if known["prepared"]:
        has_val = (folder / "val.parquet").is_file()
    else:
        from trainer_platform.data.build import request_sources

        # validation files given, a split name that a dataset folder among the sources has, or a held-out fraction
        has_val = any(sources for key, sources, _ in request_sources(request)[1:]) or request.split.val_fraction > 0
    train_file = str(folder / "train.parquet")
    val_files = (str(folder / "val.parquet"),) if has_val else ()
    return (train_file,), val_files, known["rows"]["train"], known


def data_request(spec: RunSpec, model_path: str, train: tuple[str, ...], val: tuple[str, ...]):  # -> DataRequest
    """What decides a spec's prepared data (data/build.py)."""
    from trainer_platform.data.build import DataRequest
    from trainer_platform.data.validate import data_settings

    data = spec.data
    fields, split, bad_rows = data_settings(data)
    limit = data.max_prompt_length if spec.algorithm.kind == "rl" else data.max_length
    assert limit is not None  # checked by the spec
    return DataRequest(
        name=data.name,
        fmt=data.format,
        train_sources=train,
        val_sources=val,
        fields=fields,
        split=split,
        bad_rows=bad_rows,
        max_tokens=limit,
        tokenizer=model_path,
    )
