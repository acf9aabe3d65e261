"""Auto settings: the cheapest (fastest) settings that fit with the safety margin, keeping what the user set.

Candidates are tried from the fastest to the slowest: no recompute and no offload first, then gradient
checkpointing, optimizer offload, parameter offload, Ulysses sequence parallelism, and LoRA last (it changes what
is trained, so only when full fine-tuning cannot fit and the user left model.lora_rank null). For each candidate
the micro batch (or dynamic-batching token budget) is the largest that fits at full sequence length, and the
rollout engine gets the largest memory fraction the rollout phase leaves room for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from trainer_platform.planner.arch import ModelFacts
from trainer_platform.planner.memory import FILL_FLOOR, Estimate, Settings, Workload, estimate

# gradient checkpointing, optimizer offload, parameter offload, from the fastest to the slowest
_RUNGS = ((False, False, False), (True, False, False), (True, False, True), (True, True, True))
# dynamic-batching token budgets tried, per GPU (largest first)
_BUDGETS = (65536, 49152, 32768, 24576, 16384, 12288, 8192, 6144, 4096, 3072, 2048, 1024)
# rollout memory fractions tried (largest first); verl's docs advise staying below 0.9
_FRACTIONS = (0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15, 0.1)
# the KV cache should hold a replica's share of the step's sequences, up to this many, at full length, before TP
# stops growing (fewer means the engine preempts and re-runs sequences: slower, not an OOM)
_KV_SEQUENCES = 256
# LoRA rank the planner falls back to (verl's examples/tuning scripts use 32)
LORA_FALLBACK = 32


@dataclass(frozen=True)
class UserChoices:
    """Settings the user fixed (None = the planner decides)."""

    gradient_checkpointing: bool | None = None
    param_offload: bool | None = None
    optimizer_offload: bool | None = None
    micro_batch: int | None = None
    dynamic: bool | None = None
    max_tokens: int | None = None
    ulysses: int | None = None
    rollout_tp: int | None = None
    rollout_fraction: float | None = None
    lora_rank: int | None = None


@dataclass(frozen=True)
class Choice:
    """The settings picked, their estimate at full length, and whether it fits only at shorter sequences."""

    settings: Settings
    estimate: Estimate
    # "yes": fits with the margin at full length; "tight": only when sequences average <= FILL_FLOOR of the max;
    # "no": nothing fits (the caller refuses); "over": a CPU run above host memory (a warning)
    verdict: str
    reasons: tuple[tuple[str, str, str], ...]


def _divisors(n: int) -> list[int]:
    return [d for d in range(n, 0, -1) if n % d == 0]


def _ulysses_options(m: ModelFacts, w: Workload, user: int | None) -> list[int]:
    if user is not None:
        return [user]
    # verl needs the attention heads (and the world) to split evenly over the sequence-parallel group
    return [sp for sp in (1, 2, 4, 8) if w.world % sp == 0 and m.heads % sp == 0 and sp <= w.gpus_per_node]


def _batching(m: ModelFacts, w: Workload, s: Settings, cap: float, margin: float, user: UserChoices) -> Settings | None:
    """The largest micro batch / token budget that fits at full length (None when even the smallest does not)."""
    if s.dynamic:
        # a budget must hold one full sequence; more than a rank's whole update batch buys nothing
        floor = -(-w.seq_len * w.sequences_per_sample // s.ulysses)
        ceiling = max(w.per_rank_sequences * w.seq_len * w.sequences_per_sample // s.ulysses, floor)
        auto = sorted({min(max(b, floor), ceiling) for b in _BUDGETS}, reverse=True)
        for budget in [user.max_tokens] if user.max_tokens else auto:
            candidate = replace(s, max_tokens=budget)
            if estimate(m, w, candidate, cap).training_fits(margin):
                return candidate
        return None
    micros = [user.micro_batch] if user.micro_batch else _divisors(w.per_rank_sequences)
    for micro in micros:
        candidate = replace(s, micro_batch=micro, log_prob_micro=micro)
        if estimate(m, w, candidate, cap).training_fits(margin):
            return candidate
    return None


def _rollout(m: ModelFacts, w: Workload, s: Settings, cap: float, margin: float, user: UserChoices) -> Settings:
    """Smallest TP whose KV cache holds the replica's sequences (at most _KV_SEQUENCES) at full length, with the
    largest memory fraction the rollout phase leaves room for."""
    if w.rollout_engine not in ("vllm", "sglang"):
        return s
    tps = [user.rollout_tp] if user.rollout_tp else [t for t in (1, 2, 4, 8) if w.gpus_per_node % t == 0]
    fractions = [user.rollout_fraction] if user.rollout_fraction else list(_FRACTIONS)
    fallback = None
    for tp in tps:
        for fraction in fractions:
            candidate = replace(s, rollout_tp=tp, rollout_fraction=fraction)
            est = estimate(m, w, candidate, cap)
            rollout = est.phases[0]
            if rollout.total_gib > cap * (1 - margin) or not est.kv_tokens or est.kv_tokens < w.seq_len:
                continue
            wanted = min((w.per_rank_batch or w.per_rank_sequences) * tp, _KV_SEQUENCES)
            if est.kv_tokens >= wanted * w.seq_len:
                return candidate
            fallback = fallback or candidate
            break
    return fallback or replace(s, rollout_tp=tps[-1], rollout_fraction=fractions[-1])


def candidates(m: ModelFacts, w: Workload, user: UserChoices, dynamic_default: bool) -> list[Settings]:
    """Every combination worth trying, fastest first, with the user's values imposed."""
    loras = [user.lora_rank] if user.lora_rank is not None else [0, LORA_FALLBACK]
    out: list[Settings] = []
    for lora in loras:
        for sp in _ulysses_options(m, w, user.ulysses):
            for ckpt, param, optim in _RUNGS:
                s = Settings(
                    gradient_checkpointing=ckpt if user.gradient_checkpointing is None else user.gradient_checkpointing,
                    param_offload=param if user.param_offload is None else user.param_offload,
                    optimizer_offload=optim if user.optimizer_offload is None else user.optimizer_offload,
                    dynamic=dynamic_default if user.dynamic is None else user.dynamic,
                    ulysses=sp,
                    lora_rank=lora,
                )
                if s not in out:
                    out.append(s)
    return out


def choose(m: ModelFacts, w: Workload, cap: float, margin: float, user: UserChoices, dynamic_default: bool) -> Choice:
    """The first candidate that fits with the margin at full length; else the first that fits at FILL_FLOOR
    ('tight'); else the fastest candidate with verdict 'no' (the caller explains and refuses)."""
    bases = candidates(m, w, user, dynamic_default)
    for base in bases:
        s = _batching(m, w, base, cap, margin, user)
        if s is not None:
            s = _rollout(m, w, s, cap, margin, user)
            est = estimate(m, w, s, cap)
            if est.fits(margin):
                return Choice(s, est, "yes", _reasons(s, user, w))
    tried = []
    for base in bases:
        smallest = _rollout(m, w, _smallest(base, user, w), cap, 0.0, user)
        if estimate(m, w, smallest, cap, fill=FILL_FLOOR).fits(0.0):
            return Choice(smallest, estimate(m, w, smallest, cap), "tight", _reasons(smallest, user, w))
        tried.append(smallest)
    # nothing fits: report the candidate that comes closest
    best = min(tried, key=lambda s: estimate(m, w, s, cap, fill=FILL_FLOOR).peak.total_gib)
    return Choice(best, estimate(m, w, best, cap), "no", _reasons(best, user, w))


def _smallest(s: Settings, user: UserChoices, w: Workload) -> Settings:
    """The candidate at its smallest micro batch: one sequence (or the user's own value)."""
    if s.dynamic:
        one_sequence = -(-w.seq_len * w.sequences_per_sample // s.ulysses)
        return replace(s, max_tokens=user.max_tokens or one_sequence)
    return replace(s, micro_batch=user.micro_batch or 1, log_prob_micro=user.micro_batch or 1)


def _reasons(s: Settings, user: UserChoices, w: Workload) -> tuple[tuple[str, str, str], ...]:
    """(setting, value, why) for each setting: the user's choice, or what the search needed."""

    def row(name: str, value: object, fixed: object, auto: str) -> tuple[str, str, str]:
        shown = ("on" if value else "off") if isinstance(value, bool) else str(value)
        return (name, shown, "set by you" if fixed is not None else auto)

    needed, faster = "needed to fit", "fits without it (faster)"
    out = [
        row(
            "gradient checkpointing",
            s.gradient_checkpointing,
            user.gradient_checkpointing,
            needed if s.gradient_checkpointing else faster,
        ),
        row(
            "optimizer offload", s.optimizer_offload, user.optimizer_offload, needed if s.optimizer_offload else faster
        ),
        row("param offload", s.param_offload, user.param_offload, needed if s.param_offload else faster),
        row("ulysses", s.ulysses, user.ulysses, needed if s.ulysses > 1 else "sequences fit on one GPU"),
        row(
            "lora rank",
            s.lora_rank,
            user.lora_rank,
            "full fine-tuning cannot fit" if s.lora_rank else "full fine-tuning fits",
        ),
        row("dynamic batching", s.dynamic, user.dynamic, "packs micro batches by tokens" if s.dynamic else "fixed"),
    ]
    if s.dynamic:
        out.append(row("max tokens per GPU", s.max_tokens, user.max_tokens, "largest budget that fits at full length"))
    else:
        out.append(row("micro batch per GPU", s.micro_batch, user.micro_batch, "largest divisor that fits"))
    if w.rollout_engine in ("vllm", "sglang"):
        out.append(
            row(
                "rollout TP",
                s.rollout_tp,
                user.rollout_tp,
                "smallest whose KV cache holds its share of the step's sequences",
            )
        )
        out.append(
            row(
                "rollout memory fraction",
                s.rollout_fraction,
                user.rollout_fraction,
                "largest the rollout phase leaves room for",
            )
        )
    return tuple(out)


# what a user can relax, cheapest first: (config key, value to suggest, the change to UserChoices)
_FIXES: tuple[tuple[str, str, dict[str, object]], ...] = (
    ("model.gradient_checkpointing", "true", {"gradient_checkpointing": True}),
    ("algorithm.micro_batch_size_per_gpu", "null", {"micro_batch": None}),
    ("compute.max_tokens_per_gpu", "null", {"max_tokens": None}),
    ("compute.optimizer_offload", "true", {"optimizer_offload": True}),
    ("compute.param_offload", "true", {"param_offload": True}),
    ("compute.ulysses", "null", {"ulysses": None}),
    ("compute.rollout_memory_fraction", "null", {"rollout_fraction": None}),
    ("compute.rollout_tp", "null", {"rollout_tp": None}),
    ("model.lora_rank", "null", {"lora_rank": None}),
)


def cheapest_fix(
    m: ModelFacts, w: Workload, cap: float, margin: float, user: UserChoices, dynamic_default: bool
) -> tuple[str, Choice] | None:
    """The first single change (in _FIXES order, then twice the GPUs) that makes the run fit, with its choice."""
    for key, value, change in _FIXES:
        current = getattr(user, next(iter(change)))
        if current is None or current == next(iter(change.values())):
            continue
        found = choose(m, w, cap, margin, replace(user, **change), dynamic_default)  # type: ignore[arg-type]
        if found.verdict != "no":
            return f"{key}={value}", found
    doubled = replace(w, world=w.world * 2, per_rank_sequences=max(1, w.per_rank_sequences // 2))
    found = choose(m, doubled, cap, margin, user, dynamic_default)
    if found.verdict != "no":
        return f"twice the GPUs ({doubled.world})", found
    return None
