"""How a local sweep shares this machine's GPUs: disjoint sets, never more jobs than launcher.max_parallel. Pure
bookkeeping, so it is tested here without a GPU (the ids are the machine's as CUDA_VISIBLE_DEVICES lists them)."""

from __future__ import annotations

import pytest

from launchers.gpu_pool import GpuPool, default_max_parallel, machine_gpus

EIGHT = [str(i) for i in range(8)]


def test_jobs_get_disjoint_sets_until_the_gpus_run_out() -> None:
    pool = GpuPool(EIGHT, max_parallel=None)
    sets = [pool.take(2) for _ in range(4)]
    assert sets == [("0", "1"), ("2", "3"), ("4", "5"), ("6", "7")]
    assert pool.take(2) is None and pool.take(1) is None
    pool.give(("2", "3"))
    assert pool.take(2) == ("2", "3")  # the freed set goes to the next job


def test_max_parallel_caps_the_jobs_even_with_gpus_free() -> None:
    pool = GpuPool(EIGHT, max_parallel=3)
    assert [pool.take(1) for _ in range(3)] == [("0",), ("1",), ("2",)]
    assert pool.take(1) is None and len(pool.free) == 5
    pool.give(("1",))
    assert pool.take(1) == ("1",)


def test_mixed_sizes_take_the_lowest_free_ids_and_never_overlap() -> None:
    pool = GpuPool(EIGHT, max_parallel=None)
    a, b = pool.take(3), pool.take(4)
    assert a == ("0", "1", "2") and b == ("3", "4", "5", "6")
    assert pool.take(2) is None  # one GPU left
    pool.give(a)
    c = pool.take(2)
    assert c == ("0", "1") and not set(c) & set(b)


def test_cpu_jobs_only_count_against_max_parallel() -> None:
    pool = GpuPool([], max_parallel=2)
    assert pool.take(0) == () and pool.take(0) == () and pool.take(0) is None
    assert pool.fits(0) and not pool.fits(1)


def test_visible_device_ids_are_used_as_given() -> None:
    pool = GpuPool(["4", "6"], max_parallel=None)
    assert pool.take(1) == ("4",) and pool.take(1) == ("6",)
    assert not pool.fits(3)


@pytest.mark.parametrize(
    ("gpus", "per_job", "expected"),
    [(EIGHT, [2, 2], 4), (EIGHT, [3], 2), (EIGHT, [1, 4], 2), ([], [0, 0], 1), (EIGHT, [0], 1), (["0"], [8], 1)],
)
def test_default_concurrency(gpus: list[str], per_job: list[int], expected: int) -> None:
    assert default_max_parallel(gpus, per_job) == expected


def test_machine_gpus_from_the_option_then_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    assert machine_gpus([2, 3]) == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1, 5")
    assert machine_gpus() == ["1", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert machine_gpus() == []
