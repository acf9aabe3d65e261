"""The built-in tiny datasets: columns per kind, verl's RL format, determinism and caching."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from trainer_platform.data.tiny import DATA_SOURCE, TINY_COLUMNS, TINY_KINDS, ensure_tiny_dataset

SMALL = {"n_train": 16, "n_val": 4}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", TINY_KINDS)
def test_columns_and_sizes(kind: str, tmp_path: Path) -> None:
    ds = ensure_tiny_dataset(kind, tmp_path, **SMALL)
    assert ds.train.parent == ds.val.parent and ds.train.parent.parent == tmp_path / "data"
    train, val = pq.read_table(ds.train), pq.read_table(ds.val)
    assert tuple(train.column_names) == TINY_COLUMNS[kind]
    assert (train.num_rows, val.num_rows) == (16, 4) == (ds.train_rows, ds.val_rows)


def test_sft_messages(tmp_path: Path) -> None:
    rows = pq.read_table(ensure_tiny_dataset("sft", tmp_path, **SMALL).train).to_pylist()
    for row in rows:
        user, assistant = row["messages"]
        assert user["role"] == "user" and user["content"].startswith("What is ")
        assert assistant["role"] == "assistant"
        answer = assistant["content"].rsplit("#### ", 1)[1]
        a, op, b = user["content"].removeprefix("What is ").removesuffix("?").split()
        assert int(answer) == {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]


def test_math_is_verl_rl_format(tmp_path: Path) -> None:
    rows = pq.read_table(ensure_tiny_dataset("math", tmp_path, **SMALL).val).to_pylist()
    for index, row in enumerate(rows):
        assert row["data_source"] == DATA_SOURCE
        assert row["ability"] == "math"
        assert row["prompt"][0]["role"] == "user" and "####" in row["prompt"][0]["content"]
        assert row["reward_model"]["style"] == "rule"
        assert row["extra_info"]["split"] == "val" and row["extra_info"]["index"] == index
        assert row["extra_info"]["answer"].endswith(f"#### {row['reward_model']['ground_truth']}")


def test_pref_chosen_differs_from_rejected(tmp_path: Path) -> None:
    rows = pq.read_table(ensure_tiny_dataset("pref", tmp_path, **SMALL).train).to_pylist()
    for row in rows:
        assert row["prompt"][0]["role"] == "user"
        chosen, rejected = row["chosen"].rsplit("#### ", 1)[1], row["rejected"].rsplit("#### ", 1)[1]
        assert chosen != rejected and int(rejected) >= 0


@pytest.mark.parametrize("kind", TINY_KINDS)
def test_deterministic_and_cached(kind: str, tmp_path: Path) -> None:
    first = ensure_tiny_dataset(kind, tmp_path / "a", **SMALL)
    second = ensure_tiny_dataset(kind, tmp_path / "b", **SMALL)
    assert first.train.parent.name == second.train.parent.name
    assert _digest(first.train) == _digest(second.train)
    assert _digest(first.val) == _digest(second.val)
    stamp = first.train.stat().st_mtime_ns
    assert ensure_tiny_dataset(kind, tmp_path / "a", **SMALL) == first
    assert first.train.stat().st_mtime_ns == stamp


def test_seed_and_sizes_change_the_data(tmp_path: Path) -> None:
    base = ensure_tiny_dataset("sft", tmp_path, **SMALL)
    other_seed = ensure_tiny_dataset("sft", tmp_path, n_train=16, n_val=4, seed=1)
    bigger = ensure_tiny_dataset("sft", tmp_path, n_train=32, n_val=4)
    assert len({base.train.parent, other_seed.train.parent, bigger.train.parent}) == 3
    assert _digest(base.train) != _digest(other_seed.train)


def test_rejects_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sft, math, pref"):
        ensure_tiny_dataset("nope", tmp_path)


def test_concurrent_builds_agree(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: ensure_tiny_dataset("math", tmp_path, **SMALL), range(4)))
    assert len(set(results)) == 1
    assert [p.name for p in (tmp_path / "data").iterdir()] == [results[0].train.parent.name]
