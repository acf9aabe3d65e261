"""Surgery before training: where the result goes (a cache folder keyed by the surgery and its inputs, unless
`surgery.output` is set) and building it once. Computing the folder reads no weights and imports no torch."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from trainer_platform.errors import SpecError
from trainer_platform.surgery.steps import SurgerySpec


def surgery_key(surgery: SurgerySpec, model_path: str | None) -> str:
    """A hash of the surgery and the identity (names, sizes, times) of the inputs it names."""
    from trainer_platform.surgery.run import default_sources, step_inputs
    from trainer_platform.surgery.sources import Context, fingerprint

    h = hashlib.sha256(json.dumps(surgery.model_dump(mode="json", exclude={"output"}), sort_keys=True).encode())
    prev: Path | None = None
    for step in default_sources(surgery.steps):
        try:
            inputs = step_inputs(step, Context(model_path=model_path, prev=prev), export=False)
        except SpecError:
            raise
        for p in (*inputs.models, *inputs.extra):
            h.update(f"{p}\0{fingerprint(p) if p.is_dir() else p.stat().st_mtime_ns}\n".encode())
        prev = Path("@prev")  # later steps' @prev: identified by the steps before them
    return h.hexdigest()[:16]


def output_dir(surgery: SurgerySpec, model_path: str | None) -> Path:
    from trainer_platform.paths import cache_dir

    if surgery.output:
        return Path(surgery.output).expanduser().resolve()
    return cache_dir() / "surgery" / surgery_key(surgery, model_path)


def prepare_surgery(surgery: SurgerySpec, model_path: str | None, materialize: bool) -> Path:
    """The folder training starts from: built now (once) unless `materialize` is False."""
    out = output_dir(surgery, model_path)
    if not materialize:
        return out
    from trainer_platform.surgery.run import LINEAGE, run_surgery

    if surgery.output:
        if (out / LINEAGE).is_file():
            return out  # written by an earlier surgery into this folder: train from it as it is
        run_surgery(surgery, out, model_path=model_path)
        return out
    from trainer_platform.cache import build_once

    def build(tmp: Path) -> None:
        run_surgery(surgery, tmp, model_path=model_path, log=lambda *_: None)

    return build_once(out, build)


def lineage_files(surgery: SurgerySpec, model_path: str | None) -> dict[str, str]:
    """Run-dir files that link the lineage of the model a run trains from ({} without surgery)."""
    if not surgery.enabled:
        return {}
    out = output_dir(surgery, model_path)
    link = {"model": str(out), "lineage": str(out / "lineage.json")}
    files = {"surgery.json": json.dumps(link, indent=2) + "\n"}
    if (out / "lineage.json").is_file():
        files["lineage.json"] = (out / "lineage.json").read_text()
    return files
