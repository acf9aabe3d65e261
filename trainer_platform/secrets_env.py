"""Secrets never reach a run's files: values equal to a secret in the environment are redacted.

A secret can enter a field through `${oc.env:WANDB_API_KEY}` or a pasted value; spec.yaml, job.json, launch.sh and
the dry-run printout then show `<redacted:NAME>` instead. The job itself reads secrets from its environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

# environment variables that hold secrets by name; a TOKEN, API_KEY or SECRET word (GITHUB_TOKEN, MY_SECRET_X) or
# PASSWORD/PASSWD anywhere counts too, not a word that merely starts so (TOKENIZERS_PARALLELISM)
KNOWN_SECRETS = ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY")
_SECRET_NAME = re.compile(r"(?:^|_)(?:TOKEN|API_KEY|SECRET)S?(?:_|$)|PASSWORD|PASSWD", re.IGNORECASE)
# shorter values are too likely to occur by chance (a value of "1" must not redact every 1)
_MIN_LEN = 8


def is_secret_name(name: str) -> bool:
    """Whether an environment variable of this name holds a secret."""
    return name in KNOWN_SECRETS or bool(_SECRET_NAME.search(name))


def secret_values(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """{value: variable name} of the secrets set in the environment."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for name, value in env.items():
        if is_secret_name(name) and len(value) >= _MIN_LEN:
            out.setdefault(value, name)
    return out


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """`text` with every occurrence of a secret's value replaced by `<redacted:NAME>` (longest values first)."""
    for value, name in sorted(secret_values(environ).items(), key=lambda kv: -len(kv[0])):
        text = text.replace(value, f"<redacted:{name}>")
    return text
