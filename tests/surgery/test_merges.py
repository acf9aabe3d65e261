"""Each merge against tensors computed by hand (float32)."""

from __future__ import annotations

import math

import pytest
import torch

from trainer_platform.surgery import merges, tensors
from trainer_platform.surgery.ops import slerp_t
from trainer_platform.surgery.run import ema_weights


def _one(it) -> torch.Tensor:  # type: ignore[no-untyped-def]
    return torch.cat([c.reshape(-1) for c in it])


def test_linear_weighted_and_normalised() -> None:
    a, b = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 6.0])
    assert _one(merges.linear([a, b], [1.0, 3.0], normalize=True)).tolist() == [2.5, 5.0]
    assert _one(merges.linear([a, b], [0.5, 0.5], normalize=False)).tolist() == [2.0, 4.0]


def test_task_arithmetic() -> None:
    base, m1, m2 = torch.tensor([1.0, 1.0]), torch.tensor([2.0, 1.0]), torch.tensor([1.0, 3.0])
    out = merges.sparse_delta(base, [m1, m2], [1.0, 0.5], sparsify="none", consensus=False, normalize=False, scale=2)
    assert _one(out).tolist() == [1 + 2 * 1.0, 1 + 2 * 0.5 * 2.0]


def test_slerp_orthogonal_and_colinear() -> None:
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    half = _one(merges.slerp(a, b, 0.5))
    assert torch.allclose(half, torch.tensor([1 / math.sqrt(2), 1 / math.sqrt(2)]))
    assert torch.allclose(_one(merges.slerp(a, b, 0.0)), a) and torch.allclose(_one(merges.slerp(a, b, 1.0)), b)
    # colinear: falls back to linear interpolation
    assert torch.allclose(_one(merges.slerp(a, 3 * a, 0.5)), 2 * a)


def test_slerp_t_gradient_over_layers() -> None:
    assert slerp_t((0.0, 1.0), 0, 5) == 0.0 and slerp_t((0.0, 1.0), 4, 5) == 1.0
    assert slerp_t((0.0, 1.0), 2, 5) == 0.5 and slerp_t((0.2, 0.8), None, 5) == 0.2
    assert slerp_t(0.3, 1, 5) == 0.3


def test_ties_trim_elect_disjoint_mean() -> None:
    base = torch.zeros(4)
    m1 = torch.tensor([3.0, -1.0, 0.5, 2.0])  # top 50%: 3, 2
    m2 = torch.tensor([-1.0, -4.0, 0.1, 1.0])  # top 50%: -4, -1 (|-1| = |1|: ties keep both)
    out = _one(
        merges.sparse_delta(
            base, [m1, m2], [1.0, 1.0], sparsify="magnitude", density=0.5, consensus=True, normalize=True
        )
    )
    # entry 0: +3 vs -1 -> sign +, mean of agreeing = 3; entry 1: 0 vs -4 -> -4; entry 2: both trimmed -> 0;
    # entry 3: +2 and +1 agree -> 1.5
    assert out.tolist() == [3.0, -4.0, 0.0, 1.5]


def test_dare_keeps_density_and_rescales() -> None:
    base = torch.zeros(200_000)
    model = torch.ones(200_000)
    out = _one(
        merges.sparse_delta(
            base, [model], [1.0], sparsify="random", density=0.3, consensus=False, normalize=False, seed=1, name="w"
        )
    )
    kept = (out != 0).float().mean().item()
    assert abs(kept - 0.3) < 0.01
    assert abs(out.mean().item() - 1.0) < 0.03  # rescaled by 1/density: the mean survives
    again = _one(
        merges.sparse_delta(
            base, [model], [1.0], sparsify="random", density=0.3, consensus=False, normalize=False, seed=1, name="w"
        )
    )
    assert torch.equal(out, again)


def test_breadcrumbs_drops_outliers_and_small() -> None:
    base = torch.zeros(10)
    model = torch.arange(1.0, 11.0)  # magnitudes 1..10
    out = _one(
        merges.sparse_delta(
            base, [model], [1.0], sparsify="magnitude", density=0.5, gamma=0.1, consensus=False, normalize=False
        )
    )
    assert out.tolist() == [0, 0, 0, 0, 5, 6, 7, 8, 9, 0]


def test_ema_weights_sum_to_one() -> None:
    w = ema_weights(4, 0.5)
    assert math.isclose(sum(w), 1.0) and w == [0.125, 0.125, 0.25, 0.5]


def test_chunked_equals_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    base, m1, m2 = (torch.randn(37, 11) for _ in range(3))
    whole = _one(
        merges.sparse_delta(
            base, [m1, m2], [0.4, 0.6], sparsify="magnitude", density=0.3, consensus=True, normalize=True
        )
    )
    monkeypatch.setattr(tensors, "CHUNK_ELEMENTS", 50)
    chunked = _one(
        merges.sparse_delta(
            base, [m1, m2], [0.4, 0.6], sparsify="magnitude", density=0.3, consensus=True, normalize=True
        )
    )
    assert torch.equal(whole, chunked)
    assert torch.allclose(_one(merges.slerp(m1, m2, 0.3)), _one(merges.slerp(m1, m2, 0.3)))


def test_kth_largest_streamed_is_exact() -> None:
    torch.manual_seed(0)
    mag = torch.randn(100_000).abs()
    mag[:10_000] = mag[10_000:20_000]  # duplicated values
    for k in (1, 777, 33_333, 100_000):
        expected = float(torch.kthvalue(mag, mag.numel() - k + 1).values)
        assert merges.kth_largest(lambda: iter([mag[:50_000], mag[50_000:]]), k) == expected
