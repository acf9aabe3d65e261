"""Run names made of swept values: readable, safe as directory names, distinct when cut."""

from __future__ import annotations

import pytest

from trainer_platform.errors import SpecError
from trainer_platform.names import check_run_name
from trainer_platform.sweep.naming import MAX_NAME, run_name, sanitise


def test_swept_values_name_the_run_in_axis_order() -> None:
    assert run_name({"algorithm.lr": "1e-06", "train.seed": "1"}) == "algorithm.lr=1e-06,train.seed=1"
    assert run_name({}) == "run"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("model.path=/data/my model", "model.path=_data_my_model"),
        (".hidden=1", "r.hidden=1"),
        ("+x=[1,2]", "r+x=_1,2_"),
        ("data=gsm8k", "data=gsm8k"),
    ],
)
def test_unsafe_characters_become_underscores(raw: str, expected: str) -> None:
    assert sanitise(raw) == expected
    check_run_name(sanitise(raw))  # what the sweep makes, the run-name check accepts


def test_long_names_are_cut_with_a_hash_that_keeps_them_distinct() -> None:
    a = sanitise("x=" + "a" * 300 + "1")
    b = sanitise("x=" + "a" * 300 + "2")
    assert len(a) == MAX_NAME and a != b and a[:100] == b[:100]


def test_the_run_name_check_still_refuses_what_a_directory_cannot_hold() -> None:
    for bad in ("a/b", "-x", "a b", ".x"):
        with pytest.raises(SpecError):
            check_run_name(bad)
