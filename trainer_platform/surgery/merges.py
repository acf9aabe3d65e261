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
import os
import sys
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import torch

from trainer_platform.surgery import tensors
from trainer_platform.surgery.tensors import Source, row_chunks

DOT_THRESHOLD = 0.9995
EPS = 1e-8
T = TypeVar("T")
# chunks are computed on worker threads, one per CPU, each running torch single-threaded: on chunks that fit the
# CPU caches this beats torch's own intra-op threads (measured: about half the CPU time), and a busy machine does
# not make the threads wait for each other at every operation
_WORKERS = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
_pool: ThreadPoolExecutor | None = None


def _ordered_map(fn: Callable[[T], object], items: Iterable[T], parallel: bool = True) -> Iterator:
    """fn(item) for each item, in order, computed by the worker threads a few items ahead (bounded memory)."""
    global _pool
    if not parallel or _WORKERS == 1:
        yield from map(fn, items)
        return
    if _pool is None:
        _pool = ThreadPoolExecutor(_WORKERS, "tp-surgery", initializer=torch.set_num_threads, initargs=(1,))
    pending: deque[Future] = deque()
    try:
        for item in items:
            pending.append(_pool.submit(fn, item))
            if len(pending) >= 2 * _WORKERS:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for f in pending:
            f.cancel()


def _read(sources: Sequence[Source], rows: slice) -> list[torch.Tensor]:
    """Float32 copies of rows `rows` of same-shape tensors (a 0-d tensor as one element)."""
    return [(t.reshape(1) if t.dim() == 0 else t[rows]).to(torch.float32, copy=True) for t in sources]


def _slices(t: Source) -> list[slice]:
    return [slice(None)] if t.dim() == 0 else row_chunks(tuple(t.shape))


def _map_chunks(fn: Callable[[list[torch.Tensor]], T], sources: Sequence[Source], parallel: bool = True) -> Iterator[T]:
    """fn over the aligned float32 row chunks of same-shape tensors, in order (read and computed on the workers)."""
    return _ordered_map(lambda rows: fn(_read(sources, rows)), _slices(sources[0]), parallel)


def _out(chunk: torch.Tensor, like: Source) -> torch.Tensor:
    return chunk.reshape(()) if like.dim() == 0 else chunk


def linear(tensors: Sequence[Source], weights: Sequence[float], normalize: bool) -> Iterator[torch.Tensor]:
    total = sum(weights) if normalize else 1.0

    def merge(parts: list[torch.Tensor]) -> torch.Tensor:
        acc = torch.zeros_like(parts[0])
        for part, w in zip(parts, weights, strict=False):
            acc.add_(part, alpha=w)
        return _out(acc.div_(total), tensors[0])

    return _map_chunks(merge, tensors)


def _coefficients(na: float, nb: float, dot: float, t: float) -> tuple[float, float]:
    na, nb = math.sqrt(na), math.sqrt(nb)
    na, nb = (na if na > EPS else 1.0), (nb if nb > EPS else 1.0)
    cos = max(-1.0, min(1.0, dot / (na * nb)))
    if abs(cos) > DOT_THRESHOLD:
        return 1 - t, t
    theta = math.acos(cos)
    return math.sin((1 - t) * theta) / math.sin(theta), math.sin(t * theta) / math.sin(theta)


def _stats(parts: list[torch.Tensor]) -> tuple[float, float, float]:
    xf, yf = parts[0].reshape(-1), parts[1].reshape(-1)
    return float(torch.dot(xf, xf)), float(torch.dot(yf, yf)), float(torch.dot(xf, yf))


def slerp_coefficients(a: Source, b: Source, t: float) -> tuple[float, float]:
    """(coef_a, coef_b) of SLERP between whole tensors a and b, from norms and dot product accumulated by chunks."""
    na = nb = dot = 0.0
    for sx, sy, sxy in _map_chunks(_stats, [a, b]):
        na, nb, dot = na + sx, nb + sy, dot + sxy
    return _coefficients(na, nb, dot, t)


def slerp(a: Source, b: Source, t: float) -> Iterator[torch.Tensor]:
    if a.numel() <= tensors.CHUNK_ELEMENTS:  # one chunk: convert once
        x, y = _read([a, b], slice(None))
        ca, cb = _coefficients(*_stats([x, y]), t)
        yield _out(x.mul_(ca).add_(y, alpha=cb), a)
        return
    ca, cb = slerp_coefficients(a, b, t)
    yield from _map_chunks(lambda p: _out(p[0].mul_(ca).add_(p[1], alpha=cb), a), [a, b])


# magnitudes of chunks, mapped: `each(fn)` yields fn(list of flat non-negative float32 tensors, one per stream)
# for every chunk, in order
Magnitudes = Callable[[Callable[[list[torch.Tensor]], T]], Iterator[T]]


def magnitude_bounds(base: Source, model: Source, density: float, gamma: float) -> tuple[float, float]:
    """[low, high) magnitude band of |model - base| kept by TIES (gamma=0) or breadcrumbs: the top gamma fraction
    is dropped, the next `density` fraction kept. Exact, streamed: no whole-tensor buffer, no sort."""
    return _bands(base, [model], density, gamma)[0]


def _bands(base: Source, models: Sequence[Source], density: float, gamma: float) -> list[tuple[float, float]]:
    """magnitude_bounds of every model, reading base and models together (two streamed passes in all)."""

    def each(fn: Callable[[list[torch.Tensor]], T]) -> Iterator[T]:
        return _map_chunks(lambda parts: fn([y.sub_(parts[0]).abs_().reshape(-1) for y in parts[1:]]), [base, *models])

    return _bands_of(each, len(models), base.numel(), density, gamma)


def _high_bits(mag: torch.Tensor) -> torch.Tensor:
    """The high 16 bits of non-negative float32 values (sign, exponent, 7 mantissa bits) as non-negative int16: a
    view, no arithmetic. They sort like the values."""
    halves = mag.contiguous().view(torch.int16)
    return halves[1::2] if sys.byteorder == "little" else halves[0::2]


def kth_largest_many(each: Magnitudes, ks: Sequence[Sequence[int]]) -> list[list[float]]:
    """For streams of non-negative float32 values chunked side by side, the ks[i]-th largest (1-based) values of
    stream i, exactly. Two passes: a histogram of the values' high 16 bits finds the bucket holding each k-th
    largest; the second pass keeps only the values in those buckets (a sliver) and selects among them."""
    hist = [torch.zeros(1 << 15, dtype=torch.int64) for _ in ks]
    for counts in each(lambda mags: [torch.bincount(_high_bits(m), minlength=1 << 15) for m in mags]):
        for h, c in zip(hist, counts, strict=True):
            h += c
    wanted: list[list[tuple[int, int]]] = []  # per stream: (bucket, rank inside the bucket from the top)
    for h, stream_ks in zip(hist, ks, strict=True):
        from_top = h.flip(0).cumsum(0)
        picks = []
        for k in stream_ks:
            i = int(torch.searchsorted(from_top, torch.tensor(k)))
            picks.append(((1 << 15) - 1 - i, k - (int(from_top[i - 1]) if i > 0 else 0)))
        wanted.append(picks)
    buckets = [sorted({b for b, _ in picks}) for picks in wanted]

    def inside(mags: list[torch.Tensor]) -> list[list[torch.Tensor]]:
        out = []
        for mag, stream_buckets in zip(mags, buckets, strict=True):
            high = _high_bits(mag)
            out.append([mag[high == b] for b in stream_buckets])
        return out

    found: list[list[list[torch.Tensor]]] = [[[] for _ in b] for b in buckets]
    for chunk in each(inside):
        for per_stream, got in zip(found, chunk, strict=True):
            for acc, values in zip(per_stream, got, strict=True):
                acc.append(values)
    out = []
    for picks, stream_buckets, per_stream in zip(wanted, buckets, found, strict=True):
        values = []
        for bucket, rank in picks:
            pool = torch.cat(per_stream[stream_buckets.index(bucket)])
            values.append(float(torch.kthvalue(pool, pool.numel() - rank + 1).values))
        out.append(values)
    return out


def kth_largest(magnitudes: Callable[[], Iterator[torch.Tensor]], k: int) -> float:
    """The k-th largest (1-based) of non-negative float32 values streamed twice by `magnitudes()`."""
    return kth_largest_many(lambda fn: (fn([m]) for m in magnitudes()), [[k]])[0][0]


def _bands_of(each: Magnitudes, streams: int, n: int, density: float, gamma: float) -> list[tuple[float, float]]:
    if density >= 1 and gamma == 0:
        return [(0.0, math.inf)] * streams
    n_top = int(gamma * n)
    keep = max(1, int(density * n)) if gamma == 0 else int(density * n)
    if keep == 0:
        return [(math.inf, math.inf)] * streams
    has_low, has_high = n_top + keep < n or gamma == 0, n_top > 0
    ks = ([min(n, n_top + keep)] if has_low else []) + ([n_top] if has_high else [])
    out = []
    for found in kth_largest_many(each, [ks] * streams):
        low = found.pop(0) if has_low else 0.0
        high = found.pop(0) if has_high else math.inf
        out.append((low, high))
    return out


def _sum(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    """A new tensor holding parts[0] + parts[1] + ..., added in order."""
    out = parts[0] + parts[1] if len(parts) > 1 else parts[0].clone()
    for p in parts[2:]:
        out.add_(p)
    return out


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

    `sparsify` is "none", "magnitude" (TIES/breadcrumbs band) or "random" (DARE). Works in place on each chunk's
    float32 copies: every elementwise pass over the data costs time, so there are as few as the maths needs."""
    single = base.numel() <= tensors.CHUNK_ELEMENTS  # one chunk: thresholds from the deltas already in memory
    bands = _bands(base, models, density, gamma) if sparsify == "magnitude" and not single else []
    gens = []
    if sparsify == "random":  # drawn in chunk order from one generator per model: chunks run one after another
        for i in range(len(models)):
            g = torch.Generator()
            g.manual_seed(_seed(seed, name, i))
            gens.append(g)
    total = float(torch.tensor(list(weights), dtype=torch.float32).sum())  # summed as float32

    def merge(parts: list[torch.Tensor]) -> torch.Tensor:
        b, deltas = parts[0], parts[1:]
        for d in deltas:
            d.sub_(b)
        if sparsify == "magnitude":
            mags = [d.abs() for d in deltas]
            chunk_bands = bands
            if single:
                flat = [m.reshape(-1) for m in mags]
                chunk_bands = _bands_of(lambda fn: iter([fn(flat)]), len(deltas), b.numel(), density, gamma)
            for d, mag, (low, high) in zip(deltas, mags, chunk_bands, strict=True):
                d.mul_(mag >= low) if high == math.inf else d.mul_((mag >= low) & (mag < high))
            del mags
        elif sparsify == "random":
            for d, g in zip(deltas, gens, strict=True):
                d.mul_(torch.rand(d.shape, generator=g) < density).div_(density)
        for d, w in zip(deltas, weights, strict=True):
            if w != 1.0:
                d.mul_(w)
        if consensus:
            positive = _sum(deltas) >= 0  # the elected sign: that of the weighted sum (ties go to +)
            mixed = torch.zeros_like(b)
            divisor = torch.zeros_like(b) if normalize else None
            for d, w in zip(deltas, weights, strict=True):
                agree = torch.where(positive, d > 0, d < 0)
                mixed.add_(d.mul_(agree))
                if divisor is not None:
                    divisor.add_(agree, alpha=w)
            if divisor is not None:
                mixed.div_(divisor.masked_fill_(divisor == 0, 1))
        else:
            mixed = _sum(deltas)
            if normalize and abs(total) >= 1e-8:
                mixed.div_(total)
        return _out(b.add_(mixed, alpha=scale), base)

    return _map_chunks(merge, [base, *models], parallel=sparsify != "random")
