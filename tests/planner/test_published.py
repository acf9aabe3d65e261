"""Published verl configurations (tests/planner/published_configs.yaml) judged by the memory model.

Known-good configurations must be judged as fitting ('yes', or 'tight': fits when sequences average at most
FILL_FLOOR of their maximum, which is how they ran on GSM8K-style data); OOM reports must not be judged 'yes'.
The rates below are the measured accuracy of this estimate, kept as a floor: a change that loses a case fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from published import judge, load  # noqa: E402


def verdicts() -> dict[str, tuple[str, str]]:
    archs, configs = load()
    return {c["id"]: (c["outcome"], judge(c, archs)) for c in configs}


def test_every_entry_names_its_source_and_outcome() -> None:
    _, configs = load()
    assert len({c["id"] for c in configs}) == len(configs)
    for c in configs:
        assert c["outcome"] in ("fits", "oom") and ("github.com" in c["source"] or "examples/" in c["source"]), c


def test_known_good_configurations_are_judged_fitting() -> None:
    found = verdicts()
    good = {k: v for k, (o, v) in found.items() if o == "fits"}
    missed = sorted(k for k, v in good.items() if v == "no")
    # one miss, measured: the 7B LoRA tuning script's own bisection edge (100 prompts per GPU, where 102 OOMed)
    assert missed == ["tuning-7b-lora-1xh100-bisected"], missed
    assert len(good) - len(missed) >= 25


def test_oom_reports_are_never_judged_comfortable() -> None:
    found = verdicts()
    oom = {k: v for k, (o, v) in found.items() if o == "oom"}
    assert oom and all(v != "yes" for v in oom.values()), oom
    assert sum(v == "no" for v in oom.values()) >= 2
