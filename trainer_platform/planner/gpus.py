"""The accelerators the planner knows: memory per device as the driver reports it, and name matching.

Memory is the total the driver reports (nvidia-smi `memory.total`, rocm-smi for AMD), in GiB, which is a little
under the marketing figure (an "80 GB" H100 reports 81559 MiB = 79.6 GiB). Sources: NVIDIA data sheets for the
nominal sizes; the reported totals are the values nvidia-smi prints on those boards (A100 40/80 GB: 40960/81920
MiB, H100/H800 SXM: 81559 MiB, H200: 143771 MiB, B200: 183359 MiB, L40S: 46068 MiB, RTX 4090: 24564 MiB,
RTX 5090: 32607 MiB), AMD's MI300X data sheet (192 GB HBM3); the A10 (24 GB GDDR6) at the 21.99 GiB total PyTorch
reports in verl issue #1141's OOM message.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GPU:
    """One accelerator kind."""

    # short name used in compute presets (compute.accelerator)
    slug: str
    # memory per device, GiB, as the driver reports it
    memory_gib: float
    # bf16 dense tensor throughput, TFLOP/s (data sheet, without sparsity): ranks throughput, never memory
    bf16_tflops: float
    # substrings of the driver's device name that identify it (lower case), most specific first
    names: tuple[str, ...]


GPUS: tuple[GPU, ...] = (
    GPU("a100_40g", 40.0, 312, ("a100-sxm4-40gb", "a100-pcie-40gb", "a100 40gb")),
    GPU("a100_80g", 80.0, 312, ("a100-sxm4-80gb", "a100 80gb", "a100-pcie-80gb", "a100")),
    GPU("a800", 80.0, 312, ("a800",)),
    GPU("h100", 79.6, 989, ("h100",)),
    GPU("h800", 79.6, 989, ("h800",)),
    GPU("h20", 95.6, 148, ("h20",)),
    GPU("h200", 140.4, 989, ("h200",)),
    GPU("b200", 179.1, 2250, ("b200",)),
    GPU("l40s", 45.0, 362, ("l40s",)),
    GPU("a6000", 47.5, 155, ("rtx a6000",)),
    # "a10" is matched after the longer "a100" names (longest name first)
    GPU("a10", 22.0, 125, ("a10g", "a10")),
    GPU("rtx4090", 24.0, 165, ("rtx 4090",)),
    GPU("rtx5090", 31.8, 210, ("rtx 5090",)),
    GPU("mi300x", 192.0, 1307, ("mi300x",)),
)

_BY_SLUG = {gpu.slug: gpu for gpu in GPUS}
# older preset spellings
_ALIASES = {"a100": "a100_80g", "a100_40gb": "a100_40g", "a100_80gb": "a100_80g", "4090": "rtx4090", "5090": "rtx5090"}


def gpu_by_slug(slug: str) -> GPU | None:
    """The table entry for a preset's accelerator name, or None when the planner does not know it."""
    key = slug.lower().replace("-", "_")
    return _BY_SLUG.get(_ALIASES.get(key, key))


def gpu_by_device_name(name: str) -> GPU | None:
    """The table entry for a driver's device name ('NVIDIA H100 80GB HBM3'), or None."""
    lowered = name.lower()
    # longest pattern first: "h200" before "h20", "a100-sxm4-40gb" before "a100"
    pairs = sorted(((n, gpu) for gpu in GPUS for n in gpu.names), key=lambda pair: -len(pair[0]))
    return next((gpu for n, gpu in pairs if n in lowered), None)


def known_slugs() -> tuple[str, ...]:
    return tuple(_BY_SLUG)
