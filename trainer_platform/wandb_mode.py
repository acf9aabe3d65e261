"""Whether W&B logs online or offline for a run: the user's explicit choice, else online only with an API key."""

from __future__ import annotations

import os
from pathlib import Path

from trainer_platform.spec import RunSpec


def resolve_wandb_mode(spec: RunSpec) -> str:
    """online/offline for the wandb backend: `auto` is offline unless an API key is configured."""
    wandb = spec.logger.wandb
    if wandb is None or wandb.mode != "auto":
        return wandb.mode if wandb else "disabled"
    exported = os.environ.get("WANDB_MODE", "").strip().lower()
    if exported in ("online", "offline", "disabled"):
        return exported  # the user's own choice for this shell wins over our guess
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "online" if "api.wandb.ai" in netrc.read_text() else "offline"
    except OSError:
        return "offline"
