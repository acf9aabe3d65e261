"""The provenance record of a run: code version, package versions, host and command line, taken at creation."""

from __future__ import annotations

import importlib.metadata
import platform
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer_platform.runs.status import utc_now

# The trainer_platform checkout this module belongs to (parent of the `trainer_platform/` package).
_REPO_ROOT = Path(__file__).resolve().parents[2]

# Distributions whose versions decide what a run did; looked up by metadata only, never imported.
_DISTRIBUTIONS = ("trainer-platform", "verl", "torch", "transformers", "ray", "wandb")

_GIT_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Provenance:
    """What `record.json` holds, plus the uncommitted diff that goes to `git.diff` (None when not a git checkout)."""

    record: dict[str, Any]
    diff: str | None


def _git(repo: Path, *args: str) -> str | None:
    """Stdout of `git -C repo ARGS`, or None when git is missing, fails, or `repo` is not a checkout."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo), *args],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_state(repo: Path = _REPO_ROOT) -> tuple[str | None, str | None, list[str]]:
    """(HEAD commit, `git diff HEAD` text, untracked files) of `repo`; (None, None, []) outside a git checkout."""
    head = _git(repo, "rev-parse", "HEAD")
    if head is None:
        return None, None, []
    untracked = _git(repo, "ls-files", "--others", "--exclude-standard") or ""
    return head.strip(), _git(repo, "diff", "HEAD"), untracked.splitlines()


def package_versions(names: Sequence[str] = _DISTRIBUTIONS) -> dict[str, str | None]:
    """Installed version of each distribution (None when not installed), read from metadata without importing."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment(repo: Path = _REPO_ROOT) -> Provenance:
    """What every run created now shares (code version, package versions, host): `collect` without the run's
    own fields. A batch of runs takes it once (three git commands and a metadata scan) and hands it to `collect`."""
    commit, diff, untracked = git_state(repo)
    record: dict[str, Any] = {
        "git": {
            "repo": str(repo),
            "commit": commit,
            "dirty": bool(diff or untracked),
            # new files git.diff does not contain
            "untracked": untracked,
        },
        "versions": package_versions(),
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "host": socket.gethostname(),
        "platform": platform.platform(),
    }
    return Provenance(record=record, diff=diff or None)


def collect(
    argv: Sequence[str] | None = None, repo: Path = _REPO_ROOT, *, shared: Provenance | None = None
) -> Provenance:
    """Take the provenance record now. `argv` is the command line that made the run (default: sys.argv); `shared`
    is `environment(repo)` when the caller took it already (for a batch)."""
    shared = shared or environment(repo)
    record = {"created": utc_now(), "argv": list(sys.argv if argv is None else argv), **shared.record}
    return Provenance(record=record, diff=shared.diff)
