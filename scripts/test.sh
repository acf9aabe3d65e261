#!/usr/bin/env bash
# The whole test suite: lint, format check, type check, then every test (slow end-to-end runs included).
set -euo pipefail
cd "$(dirname "$0")/.."
V=.venv/bin
"$V/ruff" check trainer_platform launchers verl tests benchmarks train.py
"$V/ruff" format --check trainer_platform launchers verl tests benchmarks train.py
"$V/mypy" trainer_platform launchers
export WANDB_MODE=offline
"$V/python" -m pytest -q -p no:cacheprovider --timeout=1200 "$@"
