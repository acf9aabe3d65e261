"""The few metrics that matter for each algorithm kind, under verl 0.9.1's own metric names, and how to show them.

Each key metric has a short label, the metric names it may come under (first present wins) and, where one exists,
the direction that is better (for "best" in the summary).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class KeyMetric:
    # short label shown on the console, e.g. "reward"
    label: str
    # verl metric names this metric is logged under, most specific first
    names: tuple[str, ...]
    # which way is better: "max", "min", or None when neither is (entropy, KL, length)
    better: Literal["max", "min"] | None = None

    def value(self, data: Mapping[str, Any]) -> float | None:
        """This metric's value in one metrics record's `data`, or None when it is not there (or not a number)."""
        for name in self.names:
            value = data.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        return None


# verl's RL trainer (main_ppo), its SFT trainer (sft_trainer) and our DPO trainer (verl/tp_dpo_trainer.py)
KEY_METRICS: dict[str, tuple[KeyMetric, ...]] = {
    "rl": (
        KeyMetric("reward", ("critic/rewards/mean", "critic/score/mean"), "max"),
        KeyMetric("kl", ("actor/kl_loss", "actor/ppo_kl")),
        KeyMetric("entropy", ("actor/entropy",)),
        KeyMetric("resp_len", ("response_length/mean",)),
        KeyMetric("pg_loss", ("actor/pg_loss",)),
        KeyMetric("grad_norm", ("actor/grad_norm",)),
    ),
    "sft": (
        KeyMetric("loss", ("train/loss",), "min"),
        KeyMetric("val_loss", ("val/loss",), "min"),
        KeyMetric("grad_norm", ("train/grad_norm",)),
        KeyMetric("lr", ("train/lr",)),
    ),
    "dpo": (
        KeyMetric("loss", ("train/loss",), "min"),
        KeyMetric("accuracy", ("train/rewards/accuracy",), "max"),
        KeyMetric("margin", ("train/rewards/margin",), "max"),
        KeyMetric("val_loss", ("val/loss",), "min"),
        KeyMetric("grad_norm", ("train/grad_norm",)),
        KeyMetric("lr", ("train/lr",)),
    ),
}


def key_metrics(kind: str | None) -> tuple[KeyMetric, ...]:
    """The key metrics of an algorithm kind (rl, sft, dpo); an unknown kind gets a loss and a grad norm."""
    return KEY_METRICS.get(kind or "", (KeyMetric("loss", ("train/loss", "actor/loss"), "min"),))


def fmt(value: float | None) -> str:
    """A metric value in at most ~7 characters: 4 significant digits, scientific notation only when needed."""
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if 1e-3 <= abs(value) < 1e5:
        text = f"{value:.4g}"
        return text
    return f"{value:.2e}"


def fmt_duration(seconds: float | None) -> str:
    """Seconds as M:SS (or H:MM:SS); '-' when unknown."""
    if seconds is None or seconds < 0:
        return "-"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
