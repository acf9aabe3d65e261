"""Weight merges of one tensor, streamed in row chunks (pure functions on torch tensors; float32 arithmetic).

Conventions follow mergekit's: linear normalises by the weight sum; task arithmetic adds weighted task vectors
(model - base) scaled by `scale`; SLERP is per tensor with a linear fallback for (anti)colinear tensors; TIES trims
each task vector to its top-`density` magnitudes, elects the sign by the weighted sum, and averages only the
entries that agree (dividing by the agreeing weights when normalising). DARE drops entries at random (kept with
probability `density`, seeded) and rescales the kept ones by 1/density. Breadcrumbs drops the largest `gamma`
fraction and keeps the next `density` fraction by magnitude.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterator, Sequence

import torch

from trainer_platform.surgery import tensors
from trainer_platform.surgery.tensors import Source, row_chunks

DOT_THRESHOLD = 0.9995
EPS = 1e-8


def _rows(t: Source) -> Iterator[tuple[slice, torch.Tensor]]:
    if t.dim() == 0:
        yield slice(None), t.reshape(1)
        return
    for rows in row_chunks(tuple(t.shape)):
        yield rows, t[rows]


def _chunks(tensors: Sequence[Source]) -> Iterator[list[torch.Tensor]]:
    """Aligned float32 row chunks of same-shape tensors."""
    first = tensors[0]
    for rows, _ in _rows(first):
        yield [(t.reshape(1) if t.dim() == 0 else t[rows]).to(torch.float32, copy=True) for t in tensors]


def _out(chunk: torch.Tensor, like: Source) -> torch.Tensor:
    return chunk.reshape(()) if like.dim() == 0 else chunk


def linear(tensors: Sequence[Source], weights: Sequence[float], normalize: bool) -> Iterator[torch.Tensor]:
    total = sum(weights) if normalize else 1.0
    for parts in _chunks(tensors):
        acc = torch.zeros_like(parts[0])
        for part, w in zip(parts, weights, strict=False):
            acc.add_(part, alpha=w)
        yield _out(acc.div_(total), tensors[0])


def _coefficients(na: float, nb: float, dot: float, t: float) -> tuple[float, float]:
    na, nb = math.sqrt(na), math.sqrt(nb)
    na, nb = (na if na > EPS else 1.0), (nb if nb > EPS else 1.0)
    cos = max(-1.0, min(1.0, dot / (na * nb)))
    if abs(cos) > DOT_THRESHOLD:
        return 1 - t, t
    theta = math.acos(cos)
    return math.sin((1 - t) * theta) / math.sin(theta), math.sin(t * theta) / math.sin(theta)


def _stats(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float, float]:
    xf, yf = x.reshape(-1), y.reshape(-1)
    return float(torch.dot(xf, xf)), float(torch.dot(yf, yf)), float(torch.dot(xf, yf))


def slerp_coefficients(a: Source, b: Source, t: float) -> tuple[float, float]:
    """(coef_a, coef_b) of SLERP between whole tensors a and b, from norms and dot product accumulated by chunks."""
    na = nb = dot = 0.0
    for x, y in _chunks([a, b]):
        sx, sy, sxy = _stats(x, y)
        na, nb, dot = na + sx, nb + sy, dot + sxy
    return _coefficients(na, nb, dot, t)


def slerp(a: Source, b: Source, t: float) -> Iterator[torch.Tensor]:
    if a.numel() <= tensors.CHUNK_ELEMENTS:  # one chunk: convert once
        x, y = next(_chunks([a, b]))
        ca, cb = _coefficients(*_stats(x, y), t)
        yield _out(x.mul_(ca).add_(y, alpha=cb), a)
        return
    ca, cb = slerp_coefficients(a, b, t)
    for x, y in _chunks([a, b]):
        yield _out(x.mul_(ca).add_(y, alpha=cb), a)


def magnitude_bounds(base: Source, model: Source, density: float, gamma: float) -> tuple[float, float]:
    """[low, high) magnitude band of |model - base| kept by TIES (gamma=0) or breadcrumbs: the top gamma fraction
    is dropped, the next `density` fraction kept. Exact, streamed: no whole-tensor buffer, no sort."""

    def magnitudes() -> Iterator[torch.Tensor]:
        for x, y in _chunks([base, model]):
            yield y.sub_(x).abs_().reshape(-1)

    return _band_of(magnitudes, base.numel(), density, gamma)


def kth_largest(magnitudes: Callable[[], Iterator[torch.Tensor]], k: int) -> float:
    """The k-th largest (1-based) of non-negative float32 values streamed twice by `magnitudes()`.

    Their bit patterns sort like the values: a histogram of the high 16 bits finds the bucket holding the k-th
    largest, a histogram of the low 16 bits inside that bucket finds the value itself."""
    high = torch.zeros(1 << 16, dtype=torch.int64)
    for mag in magnitudes():
        high += torch.bincount((mag.view(torch.int32) >> 16).long(), minlength=1 << 16)
    from_top = high.flip(0).cumsum(0)
    i = int(torch.searchsorted(from_top, torch.tensor(k)))
    bucket, above = (1 << 16) - 1 - i, int(from_top[i - 1]) if i > 0 else 0
    low = torch.zeros(1 << 16, dtype=torch.int64)
    for mag in magnitudes():
        bits = mag.view(torch.int32)
        low += torch.bincount((bits[(bits >> 16) == bucket] & 0xFFFF).long(), minlength=1 << 16)
    j = int(torch.searchsorted(low.flip(0).cumsum(0), torch.tensor(k - above)))
    return float(torch.tensor([(bucket << 16) | ((1 << 16) - 1 - j)], dtype=torch.int32).view(torch.float32))


def _band_of(
    magnitudes: Callable[[], Iterator[torch.Tensor]], n: int, density: float, gamma: float
) -> tuple[float, float]:
    if density >= 1 and gamma == 0:
        return 0.0, math.inf
    n_top = int(gamma * n)
    keep = max(1, int(density * n)) if gamma == 0 else int(density * n)
    if keep == 0:
        return math.inf, math.inf
    low = kth_largest(magnitudes, min(n, n_top + keep)) if n_top + keep < n or gamma == 0 else 0.0
    high = kth_largest(magnitudes, n_top) if n_top > 0 else math.inf
    return low, high


def _band(mag: torch.Tensor, density: float, gamma: float) -> tuple[float, float]:
    """magnitude_bounds over magnitudes already in memory."""
    return _band_of(lambda: iter([mag]), mag.numel(), density, gamma)


def _seed(seed: int, name: str, index: int) -> int:
    return (seed * 1_000_003 + zlib.crc32(name.encode()) * 31 + index) % (2**63)


def sparse_delta(
    base: Source,
    models: Sequence[Source],
    weights: Sequence[float],
    *,
    sparsify: str,
    density: float = 1.0,
    gamma: float = 0.0,
    consensus: bool,
    normalize: bool,
    scale: float = 1.0,
    seed: int = 0,
    name: str = "",
) -> Iterator[torch.Tensor]:
    """base + scale * merge of sparsified, weighted task vectors (task arithmetic, TIES, DARE, breadcrumbs).

    `sparsify` is "none", "magnitude" (TIES/breadcrumbs band) or "random" (DARE)."""
    single = base.numel() <= tensors.CHUNK_ELEMENTS  # one chunk: thresholds from the deltas already in memory
    bands = (
        [magnitude_bounds(base, m, density, gamma) for m in models] if sparsify == "magnitude" and not single else []
    )
    gens = []
    if sparsify == "random":
        for i in range(len(models)):
            g = torch.Generator()
            g.manual_seed(_seed(seed, name, i))
            gens.append(g)
    w = torch.tensor(list(weights), dtype=torch.float32)
    for parts in _chunks([base, *models]):
        b = parts[0]
        deltas = torch.stack(parts[1:]).sub_(b)
        if sparsify == "magnitude":
            if single:
                bands = [_band(deltas[i].reshape(-1).abs(), density, gamma) for i in range(len(models))]
            for i, (low, high) in enumerate(bands):
                mag = deltas[i].abs()
                deltas[i].mul_((mag >= low) & (mag < high))
        elif sparsify == "random":
            for i, g in enumerate(gens):
                keep = torch.rand(deltas[i].shape, generator=g) < density
                deltas[i].mul_(keep).div_(density)
        deltas.mul_(w.view(-1, *([1] * (deltas.dim() - 1))))
        if consensus:
            majority = torch.where(deltas.sum(0) >= 0, 1.0, -1.0)
            mask = deltas.sign() == majority
            mixed = (deltas * mask).sum(0)
            divisor = (w.view(-1, *([1] * (deltas.dim() - 1))) * mask).sum(0)
            divisor[divisor == 0] = 1
        else:
            mixed = deltas.sum(0)
            divisor = w.sum().expand_as(mixed) if abs(float(w.sum())) >= 1e-8 else torch.ones_like(mixed)
        if normalize:
            mixed = mixed / divisor
        yield _out(b.add_(mixed, alpha=scale), base)
