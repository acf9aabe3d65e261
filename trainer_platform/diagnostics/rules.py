"""Diagnostics rules over a run's metrics stream: pure, fast, standard library only.

`evaluate(records, config)` runs every enabled rule over verl file-logger records (`{"step": N, "data": {...}}`) and
returns the anomalies, each at the first step its rule fired (a rule fires once per metric and run). `Detector` does
the same one record at a time, for a monitor beside a running job, `watch`, or pruning a sweep's trials.
The thresholds come from the `diagnostics` config group (conf/diagnostics/, where each default names its source);
`config_from_dict` validates that plain data. Metric names are verl 0.9.1's (and our DPO trainer's).

No imports from the rest of the platform: launchers ship this file beside a job (launchers/render.py).
"""

from __future__ import annotations

import difflib
import fnmatch
import math
import statistics
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

WARN = "warn"
STOP = "stop"
ACTIONS = (WARN, STOP)
# values kept per metric: enough for every rule's window
_HISTORY = 512


class ConfigError(ValueError):
    """A diagnostics setting is invalid: `key` names it (diagnostics.<rule>.<field>), `hint` says how to fix it."""

    def __init__(self, key: str, problem: str, hint: str) -> None:
        super().__init__(f"{key}: {problem} ({hint})")
        self.key, self.problem, self.hint = key, problem, hint


@dataclass(frozen=True)
class Anomaly:
    # the rule that fired, e.g. "kl_spike"
    rule: str
    # the metric it fired on, e.g. "actor/kl_loss"
    metric: str
    # the training step of the record that made it fire
    step: int
    # the metric's value there (None when the rule compares several metrics)
    value: float | None
    # "warn" or "stop"
    action: str
    # one line saying what was seen against which threshold
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Anomaly:
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})  # type: ignore[arg-type]

    def line(self) -> str:
        return f"step {self.step}  {self.rule}  {self.metric}  [{self.action}]  {self.message}"


# ---- the series a rule looks at --------------------------------------------------------------------------------


def number(value: Any) -> float | None:
    """A metric value as a float (NaN and infinities included, also when written as strings); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
        return float(value)
    return None


class History:
    """The values seen so far per metric name, as (step, value) pairs, the newest last (bounded)."""

    def __init__(self) -> None:
        self.series: dict[str, deque[tuple[int, float]]] = {}

    def add(self, step: int, data: Mapping[str, Any]) -> None:
        for name, raw in data.items():
            value = number(raw)
            if value is not None:
                self.series.setdefault(name, deque(maxlen=_HISTORY)).append((step, value))

    def values(self, name: str) -> list[float]:
        return [v for _, v in self.series.get(name, ())]

    def first(self, names: Sequence[str], data: Mapping[str, Any]) -> str | None:
        """The first of `names` (exact, or a glob like `val-core/*/reward/mean@*`) present in `data`."""
        for pattern in names:
            if pattern in data:
                return pattern
            if any(c in pattern for c in "*?["):
                for name in sorted(data):
                    if fnmatch.fnmatchcase(name, pattern):
                        return name
        return None


def _finite(values: Iterable[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


# ---- the rules -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """What every rule has: whether it runs, what it does when it fires, and which metrics it reads."""

    # run this rule
    enabled: bool = True
    # "warn" (console, record in the run dir, W&B alert) or "stop" (end the run, keeping its last checkpoint)
    action: str = WARN
    # metric names the rule reads, the first one present wins (globs allowed)
    metrics: tuple[str, ...] = ()

    name = "rule"

    def check(self, step: int, data: Mapping[str, Any], history: History) -> list[tuple[str, float | None, str]]:
        """(metric, value, message) for each metric on which the rule fires at this record (history holds it)."""
        raise NotImplementedError


@dataclass(frozen=True)
class NonFinite(Rule):
    action: str = STOP
    metrics: tuple[str, ...] = ("*loss*", "*grad_norm*")
    name = "non_finite"

    def check(self, step: int, data: Mapping[str, Any], history: History) -> list[tuple[str, float | None, str]]:
        out: list[tuple[str, float | None, str]] = []
        for key in sorted(data):
            value = number(data[key])
            if (
                value is not None
                and not math.isfinite(value)
                and any(fnmatch.fnmatchcase(key, p) for p in self.metrics)
            ):
                out.append((key, value, f"{key} is {value}"))
        return out


@dataclass(frozen=True)
class Spike(Rule):
    """A value above `max_value`, or above `factor` x the median of the previous `window` values (and above
    `min_value`, so that noise around zero is no spike)."""

    # absolute ceiling; null = none
    max_value: float | None = None
    # how many times the recent median counts as a spike
    factor: float = 10.0
    # previous values the median is taken over
    window: int = 10
    # values at or below this never count as a spike
    min_value: float = 0.0

    def check(self, step: int, data: Mapping[str, Any], history: History) -> list[tuple[str, float | None, str]]:
        name = history.first(self.metrics, data)
        if name is None:
            return []
        values = history.values(name)
        value = values[-1]
        if not math.isfinite(value):
            return []  # non_finite's business
        if self.max_value is not None and value > self.max_value:
            return [(name, value, f"{name}={value:.4g} above max_value {self.max_value:g}")]
        before = _finite(values[-self.window - 1 : -1])
        if len(before) < min(3, self.window) or value <= self.min_value:
            return []
        median = statistics.median(before)
        if value > self.factor * abs(median):
            return [
                (
                    name,
                    value,
                    f"{name}={value:.4g} is over {self.factor:g}x the median {median:.4g} of the "
                    f"previous {len(before)} steps",
                )
            ]
        return []


@dataclass(frozen=True)
class KlSpike(Spike):
    metrics: tuple[str, ...] = ("actor/kl_loss", "critic/kl")
    name = "kl_spike"


@dataclass(frozen=True)
class GradNormExplosion(Spike):
    metrics: tuple[str, ...] = ("actor/grad_norm", "train/grad_norm", "critic/grad_norm")
    name = "grad_norm_explosion"


@dataclass(frozen=True)
class EntropyCollapse(Rule):
    metrics: tuple[str, ...] = ("actor/entropy",)
    # fire when entropy falls below this fraction of its mean over the first `baseline_steps` steps
    min_fraction: float = 0.1
    # steps whose mean is the reference
    baseline_steps: int = 3
    # fire when entropy falls below this absolute value (nats per token); null = no floor
    floor: float | None = None
    name = "entropy_collapse"

    def check(self, step: int, data: Mapping[str, Any], history: History) -> list[tuple[str, float | None, str]]:
        name = history.first(self.metrics, data)
        if name is None:
            return []
        values = _finite(history.values(name))
        if not values:
            return []
        value = values[-1]
        if self.floor is not None and value < self.floor:
            return [(name, value, f"{name}={value:.4g} below floor {self.floor:g}")]
        if len(values) <= self.baseline_steps:
            return []
        base = _mean(values[: self.baseline_steps])
        if base > 0 and value < self.min_fraction * base:
            return [(name, value, f"{name}={value:.4g} is under {self.min_fraction:g}x its start {base:.4g}")]
        return []


@dataclass(frozen=True)
class RewardCollapse(Rule):
    metrics: tuple[str, ...] = ("critic/score/mean", "critic/rewards/mean")
    # steps per rolling mean
    window: int = 5
    # fire when the rolling mean falls more than this below its best (reward units)
    min_drop: float = 0.2
    # ... and more than this fraction of what it had gained from its first rolling mean to its best
    drop_fraction: float = 0.5
    name = "reward_collapse"

    def check(self, step: int, data: Mapping[str, Any], history: History) -> list[tuple[str, float | None, str]]:
        name = history.first(self.metrics, data)
        if name is None:
            return []
        values = _finite(history.values(name))
        if len(values) < 2 * self.window:
            return []
        means = [_mean(values[i - self.window : i]) for i in range(self.window, len(values) + 1)]
        best, start, now = max(means), means[0], means[-1]
        drop = best - now
        if drop > self.min_drop and drop > self.drop_fraction * max(0.0, best - start):
            return [(name, now, f"{self.window}-step mean of {name} fell to {now:.4g} from its best {best:.4g}")]
        return []


@dataclass(frozen=True)
class RewardHacking(Rule):
    """Reward rising while response length explodes, or while the validation reward falls."""

    metrics: tuple[str, ...] = ("critic/score/mean", "critic/rewards/mean")
    # response length metric
    length_metrics: tuple[str, ...] = ("response_length/mean",)
    # validation reward metrics (globs)
    val_metrics: tuple[str, ...] = ("val-core/*/reward/mean@*", "val-core/*/acc/mean@*", "val/*score*")
    # steps per rolling mean
    window: int = 5
    # fire when the length's rolling mean exceeds this multiple of its first one while the reward's mean rose
    length_factor: float = 2.0
    # fire when the validation reward fell this much below its best while the training reward rose
    val_drop: float = 0.05
    name = "reward_hacking"

    def check(self, step: int, data: Mapping[str, Any], history: History) -> list[tuple[str, float | None, str]]:
        name = history.first(self.metrics, data)
        if name is None:
            return []
        reward = _finite(history.values(name))
        out: list[tuple[str, float | None, str]] = []
        length_name = history.first(self.length_metrics, data)
        if length_name is not None and len(reward) >= 2 * self.window:
            length = _finite(history.values(length_name))
            w = self.window
            if len(length) >= 2 * w:
                r0, r1 = _mean(reward[:w]), _mean(reward[-w:])
                l0, l1 = _mean(length[:w]), _mean(length[-w:])
                if r1 > r0 and l0 > 0 and l1 > self.length_factor * l0:
                    out.append(
                        (
                            length_name,
                            l1,
                            f"{name} rose {r0:.4g} -> {r1:.4g} while {length_name} grew "
                            f"{l0:.4g} -> {l1:.4g} (over {self.length_factor:g}x)",
                        )
                    )
        val_name = history.first(self.val_metrics, data)
        if val_name is not None:
            val = [(s, v) for s, v in history.series.get(val_name, ()) if math.isfinite(v)]
            if len(val) >= 2:
                best_step, best = max(val, key=lambda sv: sv[1])
                now = val[-1][1]
                at_best = [v for s, v in history.series[name] if s <= best_step][-self.window :]
                recent = reward[-self.window :]
                if best - now > self.val_drop and at_best and _mean(recent) > _mean(at_best):
                    out.append(
                        (
                            val_name,
                            now,
                            f"{val_name} fell {best:.4g} -> {now:.4g} while {name} rose "
                            f"{_mean(at_best):.4g} -> {_mean(recent):.4g}",
                        )
                    )
        return out


@dataclass(frozen=True)
class LossPlateau(Rule):
    metrics: tuple[str, ...] = ("train/loss",)
    # steps compared: the mean of the last window/2 against the window/2 before them
    window: int = 50
    # fire when the loss improved by less than this fraction over the window
    min_rel_improvement: float = 0.01
    name = "loss_plateau"

    def check(self, step: int, data: Mapping[str, Any], history: History) -> list[tuple[str, float | None, str]]:
        name = history.first(self.metrics, data)
        if name is None:
            return []
        values = _finite(history.values(name))
        half = max(1, self.window // 2)
        if len(values) < 2 * half:
            return []
        before, after = _mean(values[-2 * half : -half]), _mean(values[-half:])
        if before == 0:
            return []
        gain = (before - after) / abs(before)
        if gain < self.min_rel_improvement:
            return [
                (
                    name,
                    after,
                    f"{name} improved {gain:.2%} over the last {2 * half} steps (under {self.min_rel_improvement:.2%})",
                )
            ]
        return []


@dataclass(frozen=True)
class ProbMismatch(Rule):
    metrics: tuple[str, ...] = ("training/rollout_probs_diff_max",)
    # fire when the largest per-token |p_rollout - p_actor| of a step exceeds this
    max_value: float = 0.5
    name = "prob_mismatch"

    def check(self, step: int, data: Mapping[str, Any], history: History) -> list[tuple[str, float | None, str]]:
        name = history.first(self.metrics, data)
        if name is None:
            return []
        value = history.values(name)[-1]
        if math.isfinite(value) and value > self.max_value:
            return [
                (
                    name,
                    value,
                    f"{name}={value:.4g} above max_value {self.max_value:g}: rollout and actor "
                    "disagree (consider verl's rollout correction)",
                )
            ]
        return []


RULES: dict[str, type[Rule]] = {
    cls.name: cls
    for cls in (
        NonFinite,
        KlSpike,
        EntropyCollapse,
        RewardCollapse,
        RewardHacking,
        GradNormExplosion,
        LossPlateau,
        ProbMismatch,
    )
}


# ---- config ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiagnosticsConfig:
    # run any rule at all (beside the job, in `watch` and `diagnose`)
    enabled: bool = True
    # seconds between two reads of metrics.jsonl by the monitor beside the job
    poll_s: float = 2.0
    # rule name -> its settings
    rules: Mapping[str, Rule] = field(default_factory=dict)
    # where the monitor sends W&B alerts (project, entity, group, mode, name), set by the platform when the run
    # logs to W&B; None = no alerts
    wandb: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "poll_s": self.poll_s,
            "rules": {name: _rule_dict(rule) for name, rule in self.rules.items()},
            **({"wandb": dict(self.wandb)} if self.wandb is not None else {}),
        }


def _rule_dict(rule: Rule) -> dict[str, Any]:
    return {f.name: list(v) if isinstance(v := getattr(rule, f.name), tuple) else v for f in fields(rule)}


def _coerce(key: str, value: Any, default: Any, annotation: str) -> Any:
    if "tuple" in annotation:
        if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(key, f"expected a list of metric names, got {value!r}", "e.g. [actor/kl_loss]")
        return tuple(value)
    if value is None and "None" in annotation:
        return None
    if "bool" in annotation:
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {value!r}", "set true or false")
        return value
    if annotation.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(key, f"expected a whole number >= 1, got {value!r}", "e.g. 10")
        return value
    if "float" in annotation:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(key, f"expected a number, got {value!r}", f"e.g. {default}")
        return float(value)
    if key.endswith(".action"):
        if value not in ACTIONS:
            raise ConfigError(key, f"invalid action {value!r}", f"expected one of: {', '.join(ACTIONS)}")
        return value
    return value


def _unknown(key: str, name: str, known: Sequence[str]) -> ConfigError:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else "known: " + ", ".join(known)
    return ConfigError(f"{key}.{name}" if key else name, "unknown setting", hint)


def config_from_dict(data: Mapping[str, Any] | None, key: str = "diagnostics") -> DiagnosticsConfig:
    """A DiagnosticsConfig from plain data (the `diagnostics` config group); ConfigError names a bad key.
    Rules not named keep their built-in settings; `null` or {} gives every rule its built-in settings."""
    data = dict(data or {})
    top = {"enabled", "poll_s", "rules", "wandb"}
    for name in data:
        if name not in top:
            raise _unknown(key, name, sorted(top))
    enabled = _coerce(f"{key}.enabled", data.get("enabled", True), True, "bool")
    poll_s = _coerce(f"{key}.poll_s", data.get("poll_s", 2.0), 2.0, "float")
    if poll_s <= 0:
        raise ConfigError(f"{key}.poll_s", f"must be above 0, got {poll_s}", "e.g. 2.0")
    raw_rules = data.get("rules") or {}
    if not isinstance(raw_rules, Mapping):
        raise ConfigError(
            f"{key}.rules", f"expected a mapping of rule name -> settings, got {raw_rules!r}", "see conf/diagnostics/"
        )
    rules: dict[str, Rule] = {}
    for name, cls in RULES.items():
        settings = raw_rules.get(name) or {}
        if not isinstance(settings, Mapping):
            raise ConfigError(f"{key}.rules.{name}", f"expected a mapping, got {settings!r}", "see conf/diagnostics/")
        known = {f.name: f for f in fields(cls)}
        values = {}
        for field_name, value in settings.items():
            if field_name not in known:
                raise _unknown(f"{key}.rules.{name}", str(field_name), sorted(known))
            f = known[field_name]
            values[field_name] = _coerce(f"{key}.rules.{name}.{field_name}", value, f.default, str(f.type))
        rules[name] = cls(**values)
    for name in raw_rules:
        if name not in RULES:
            raise _unknown(f"{key}.rules", str(name), sorted(RULES))
    wandb = data.get("wandb")
    if wandb is not None and not isinstance(wandb, Mapping):
        raise ConfigError(f"{key}.wandb", f"expected a mapping, got {wandb!r}", "set by the platform; remove it")
    return DiagnosticsConfig(enabled=enabled, poll_s=poll_s, rules=rules, wandb=wandb)


# ---- running the rules -----------------------------------------------------------------------------------------


class Detector:
    """Runs the rules record by record: `feed(record)` returns the anomalies that record made fire. Each rule fires
    at most once per metric; records of a step already seen (a resumed attempt re-reading) are skipped."""

    def __init__(self, config: DiagnosticsConfig) -> None:
        self.config = config
        self.history = History()
        self.fired: set[tuple[str, str]] = set()
        self.anomalies: list[Anomaly] = []
        self.last_step: int | None = None

    def feed(self, record: Mapping[str, Any]) -> list[Anomaly]:
        step, data = record.get("step"), record.get("data")
        if not isinstance(step, int) or isinstance(step, bool) or not isinstance(data, Mapping):
            return []
        if self.last_step is not None and step <= self.last_step:
            return []
        self.last_step = step
        self.history.add(step, data)
        if not self.config.enabled:
            return []
        out: list[Anomaly] = []
        for name, rule in self.config.rules.items():
            if not rule.enabled:
                continue
            for metric, value, message in rule.check(step, data, self.history):
                if (name, metric) not in self.fired:
                    self.fired.add((name, metric))
                    out.append(Anomaly(name, metric, step, value, rule.action, message))
        self.anomalies += out
        return out

    def feed_all(self, records: Iterable[Mapping[str, Any]]) -> list[Anomaly]:
        return [a for record in records for a in self.feed(record)]


def evaluate(records: Iterable[Mapping[str, Any]], config: DiagnosticsConfig | None = None) -> list[Anomaly]:
    """Every anomaly in `records` (file-logger records, oldest first), in the order they fired.
    `config` None: every rule with its built-in settings."""
    return Detector(config or config_from_dict(None)).feed_all(records)
