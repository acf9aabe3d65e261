"""Values written as Hydra overrides come back unchanged through Hydra's own override parser."""

from __future__ import annotations

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from trainer_platform.hydra_values import literal, quote

TRICKY = [
    "plain",
    "/models/it's tiny",
    r"\\boxed\{[^}]+\}\s*$",
    "C:\\path\\",
    "ends with quote'",
    "a\\'b",
    "back\\\\'slashes",
    "spaces, commas: [brackets] {braces} = signs",
    "unicode ✓ ٨",
    "",
]


@pytest.mark.parametrize("value", TRICKY)
def test_quoted_strings_round_trip(value: str) -> None:
    parsed = OverridesParser.create().parse_override(f"key={quote(value)}")
    assert parsed.value() == value


def test_nested_literals_round_trip() -> None:
    data = {"scorer": "composite", "terms": [{"w": -0.25, "opts": {"pattern": TRICKY[2], "on": True, "n": None}}]}
    parsed = OverridesParser.create().parse_override(f"key={literal(data)}")
    assert parsed.value() == data
