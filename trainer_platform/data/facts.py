"""What a run's data is, said without preparing it: what a dry run prints and writes into its data.json.

The sources (files, their kind, their rows where that is cheap to know), the field mapping, the prepared data's
cache key (the content hash of data/build.py) and whether the cache holds it, the row counts the preparation
recorded (when it did) and the reward scorer. Nothing is mapped, tokenised or written here: rows of a source are
counted only from parquet metadata or by counting JSONL lines; anything else says "not prepared yet".
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer_platform.data.build import DataRequest, load_prepared, prepared_folder, request_hash, request_sources
from trainer_platform.data.settings import FieldMap, SplitSettings
from trainer_platform.data.sources import SUFFIXES, source_files

if TYPE_CHECKING:
    from trainer_platform.spec import DataSpec, RewardSpec

# the counts of a preparation's report.json (data/build.py Counts) a dry run shows
_COUNTS = ("read", "bad", "too_long", "train", "val")


def user_data_facts(data: DataSpec, req: DataRequest) -> dict[str, Any]:
    """Facts of a user's data whose sources are all on this machine (hashes them: SpecError when one is unusable)."""
    digest = request_hash(req)
    folder = prepared_folder(req, digest)
    facts = _common(data) | {
        "sources": _sources(req),
        "mapping": req.fields.model_dump(exclude_defaults=True),
        "split": req.split.model_dump(),
        "bad_rows": req.bad_rows.model_dump(),
        "max_tokens": req.max_tokens,
        # the model whose tokenizer files the key covers; not here yet (a model built at launch): the key may differ
        "tokenizer": req.tokenizer,
        "tokenizer_here": not Path(req.tokenizer).is_absolute() or Path(req.tokenizer).is_dir(),
        "hash": digest,
        "cache_dir": str(folder),
        "prepared": (folder / "report.json").is_file(),
    }
    if facts["prepared"]:
        report = load_prepared(folder).counts
        facts["rows"] = {key: report.get(key) for key in _COUNTS}
    else:
        facts["rows"] = {"train": None, "val": None}
    return facts


def missing_data_facts(data: DataSpec) -> dict[str, Any]:
    """Facts of a user's data some of whose sources are not on this machine (prepared where the job runs)."""
    sources = [
        {"split": split, "path": str(Path(name).expanduser()), "here": Path(name).expanduser().exists()}
        for split, names in (("train", data.train_files), ("val", data.val_files))
        for name in names or ()
    ]
    mapping = (data.fields or FieldMap()).model_dump(exclude_defaults=True)
    split = (data.split or SplitSettings()).model_dump()
    return _common(data) | {"sources": sources, "mapping": mapping, "split": split, "prepared": False, "hash": None}


def builtin_data_facts(data: DataSpec, train_rows: int | None, val_rows: int | None) -> dict[str, Any]:
    """Facts of a built-in generated dataset (generated into the cache, its rows known from its recipe)."""
    return _common(data) | {"prepared": True, "rows": {"train": train_rows, "val": val_rows}}


def _common(data: DataSpec) -> dict[str, Any]:
    return {
        "name": data.name,
        "format": data.format,
        "builtin": data.builtin,
        "reward": reward_facts(data.reward) if data.format == "prompts" else None,
    }


def reward_facts(reward: RewardSpec | None) -> dict[str, Any]:
    """The reward the job's RL responses get: the scorer data.reward selects, with its options, terms or file."""
    from trainer_platform.rewards import COMPOSITE, CUSTOM, VERL, scorer_of

    if reward is None:
        return {"scorer": VERL}
    scorer = scorer_of(reward)
    out: dict[str, Any] = {"scorer": scorer, "options": dict(reward.options)}
    if scorer == CUSTOM:
        out.update(path=reward.path, name=reward.name)
    elif scorer == COMPOSITE:
        out["terms"] = [term.model_dump(exclude_defaults=True) | {"scorer": term.scorer} for term in reward.terms]
    return out


def _sources(req: DataRequest) -> list[dict[str, Any]]:
    out = []
    for key, sources, split in request_sources(req):
        role = "train" if key == "data.train_files" else "val"
        for source in sources:
            files = source_files(Path(source), split, key=key)
            out.append({"split": role, "path": source, "kind": _kind(Path(source)), "rows": _cheap_rows(files)})
    return out


def _kind(path: Path) -> str:
    if path.is_dir():
        return "dataset folder"
    return SUFFIXES.get(path.suffix.lower(), path.suffix.lstrip("."))


def _cheap_rows(files: list[Path]) -> int | None:
    """Rows of a source known without parsing them (parquet metadata, JSONL lines), else None."""
    total = 0
    for file in files:
        kind = SUFFIXES.get(file.suffix.lower())
        if kind == "parquet":
            import pyarrow.parquet as pq

            try:
                total += pq.read_metadata(file).num_rows
            except Exception:  # noqa: BLE001 - unreadable here: the preparation names the problem
                return None
        elif kind == "jsonl":
            total += _non_blank_lines(file)
        else:
            return None
    return total


def _non_blank_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                count += 1
    return count
