"""Built-in tiny datasets: small-integer arithmetic, generated offline and deterministically from a seed.

Three kinds, each written as a train and a val parquet file under `<cache>/data/tiny-<kind>-<hash>/`:

- ``sft``:  ``messages`` (list of {role, content}); the assistant shows its working and ends with ``#### <answer>``.
- ``math``: verl's RL format (as verl's ``examples/data_preprocess/gsm8k.py``): ``data_source``, ``prompt``,
  ``ability``, ``reward_model`` = {style: rule, ground_truth}, ``extra_info``.
- ``pref``: ``prompt`` (list of {role, content}), ``chosen`` (a correct answer), ``rejected`` (a wrong one of the
  same form).

Files are byte-identical for the same (kind, sizes, seed, generator version) and are built into a temporary sibling
folder that is renamed into place, so concurrent callers are safe.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer_platform.cache import build_once
from trainer_platform.paths import cache_dir

# Bump whenever the generated content changes: it is part of the cache key.
GENERATOR_VERSION = 2

DATA_SOURCE = "trainer_platform/tiny_math"
TINY_KINDS: tuple[str, ...] = ("sft", "math", "pref")
TINY_COLUMNS: dict[str, tuple[str, ...]] = {
    "sft": ("messages",),
    "math": ("data_source", "prompt", "ability", "reward_model", "extra_info"),
    "pref": ("prompt", "chosen", "rejected"),
}
INSTRUCTION = 'Let\'s think step by step and output the final answer after "####".'

_OPS = ("+", "-", "*")
# Operand ranges: small enough that the ~100k-parameter tiny model can be warm-started in seconds to a partial
# accuracy that RL then visibly improves (trainer_platform/models/warmstart.py).
MAX_SUM_OPERAND = 20
MAX_PRODUCT_OPERAND = 9
_SPLIT_SALT = {"train": 0, "val": 1}


@dataclass(frozen=True)
class TinyDataset:
    """Paths of one built tiny dataset."""

    kind: str
    train: Path
    val: Path
    # rows of each split (build_rows makes exactly n of a split)
    train_rows: int
    val_rows: int


@dataclass(frozen=True)
class Problem:
    """One arithmetic problem `a op b` with its integer answer (never negative)."""

    a: int
    op: str
    b: int

    @property
    def answer(self) -> int:
        if self.op == "+":
            return self.a + self.b
        if self.op == "-":
            return self.a - self.b
        return self.a * self.b

    @property
    def question(self) -> str:
        return f"What is {self.a} {self.op} {self.b}?"

    @property
    def prompt(self) -> str:
        """The RL prompt (tiny_math's user message): the question and the GSM8K-style answer instruction."""
        return f"{self.question} {INSTRUCTION}"

    def solution(self, answer: int | None = None) -> str:
        """The assistant's reply: one line of working, then `#### <answer>` (a given wrong answer for `rejected`)."""
        value = self.answer if answer is None else answer
        return f"{self.a} {self.op} {self.b} = {value}.\n#### {value}"


def sample_problems(rng: random.Random, n: int) -> list[Problem]:
    """`n` problems drawn from `rng`: sums and differences of operands up to 20, products up to 9 x 9."""
    problems = []
    for _ in range(n):
        op = rng.choice(_OPS)
        if op == "*":
            a, b = rng.randint(0, MAX_PRODUCT_OPERAND), rng.randint(0, MAX_PRODUCT_OPERAND)
        else:
            a, b = rng.randint(0, MAX_SUM_OPERAND), rng.randint(0, MAX_SUM_OPERAND)
            if op == "-" and b > a:
                a, b = b, a
        problems.append(Problem(a, op, b))
    return problems


def corpus_lines(n: int = 2000, seed: int = 1234) -> Iterator[str]:
    """Text in the style of every tiny dataset (questions, instructions, solutions): a tokenizer training corpus."""
    for problem in sample_problems(random.Random(seed), n):
        yield problem.question
        yield problem.prompt
        yield problem.solution()


def _wrong_answer(problem: Problem, rng: random.Random) -> int:
    delta = rng.choice((-10, -2, -1, 1, 2, 10))
    wrong = problem.answer + delta
    return wrong if wrong >= 0 else problem.answer + abs(delta)


def _rows(kind: str, split: str, problems: list[Problem], rng: random.Random) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for index, problem in enumerate(problems):
        answer = str(problem.answer)
        if kind == "sft":
            rows.append(
                {
                    "messages": [
                        {"role": "user", "content": problem.question},
                        {"role": "assistant", "content": problem.solution()},
                    ]
                }
            )
        elif kind == "math":
            rows.append(
                {
                    "data_source": DATA_SOURCE,
                    "prompt": [{"role": "user", "content": problem.prompt}],
                    "ability": "math",
                    "reward_model": {"style": "rule", "ground_truth": answer},
                    "extra_info": {
                        "split": split,
                        "index": index,
                        "answer": problem.solution(),
                        "question": problem.question,
                    },
                }
            )
        else:
            rows.append(
                {
                    "prompt": [{"role": "user", "content": problem.question}],
                    "chosen": problem.solution(),
                    "rejected": problem.solution(_wrong_answer(problem, rng)),
                }
            )
    return rows


def build_rows(kind: str, split: str, n: int, seed: int) -> list[dict[str, Any]]:
    """The `n` rows of one split, a pure function of its arguments."""
    if kind not in TINY_KINDS:
        raise ValueError(f"unknown tiny dataset kind {kind!r}; choose one of {', '.join(TINY_KINDS)}")
    rng = random.Random(seed * 1000 + _SPLIT_SALT[split])
    return _rows(kind, split, sample_problems(rng, n), rng)


def _recipe_hash(kind: str, n_train: int, n_val: int, seed: int) -> str:
    recipe = {"kind": kind, "n_train": n_train, "n_val": n_val, "seed": seed, "version": GENERATOR_VERSION}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def _write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa  # here: a run whose tiny data is cached never loads pyarrow for it (~0.2 s)
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows)
    pq.write_table(table, path, compression="zstd")


def ensure_tiny_dataset(
    kind: str, cache_root: Path | None = None, *, n_train: int = 256, n_val: int = 32, seed: int = 0
) -> TinyDataset:
    """Build (or reuse) a tiny dataset of `kind` and return its train/val parquet paths."""
    if kind not in TINY_KINDS:
        raise ValueError(f"unknown tiny dataset kind {kind!r}; choose one of {', '.join(TINY_KINDS)}")
    if n_train < 1 or n_val < 1:
        raise ValueError(f"n_train and n_val must be positive, got {n_train} and {n_val}")
    target = (cache_root or cache_dir()) / "data" / f"tiny-{kind}-{_recipe_hash(kind, n_train, n_val, seed)}"

    def build(folder: Path) -> None:
        _write_parquet(build_rows(kind, "train", n_train, seed), folder / "train.parquet")
        _write_parquet(build_rows(kind, "val", n_val, seed), folder / "val.parquet")

    build_once(target, build)
    return TinyDataset(kind, target / "train.parquet", target / "val.parquet", train_rows=n_train, val_rows=n_val)
