"""Config convention: every field in conf/ and sweeps/ has a comment above it saying what it means (DESIGN.md)."""

from __future__ import annotations

import re

import pytest

from conftest import REPO_ROOT

YAMLS = sorted((REPO_ROOT / "conf").rglob("*.yaml")) + sorted((REPO_ROOT / "sweeps").glob("*.yaml"))
# keys that are Hydra's own machinery, documented by Hydra
_HYDRA = ("defaults", "hydra", "run", "sweep", "dir", "subdir", "output_subdir", "job", "chdir")


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_field_has_a_comment(path) -> None:  # type: ignore[no-untyped-def]
    lines = path.read_text().splitlines()
    in_hydra = False
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z_][\w]*):", line)
        if not match:
            continue
        indent, key = match.groups()
        if not indent:
            in_hydra = key in ("hydra", "defaults")
        if in_hydra or key in _HYDRA:
            continue
        previous = next((p for p in reversed(lines[:i]) if p.strip()), "")
        assert previous.strip().startswith("#") or not indent and key in ("algorithm", "train", "data", "logger"), (
            f"{path.name}:{i + 1}: field {key!r} has no comment above it"
        )
