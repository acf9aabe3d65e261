"""A verl platform for machines without an accelerator: device ``cpu``, collectives over ``gloo``.

Loaded into verl's own processes with ``VERL_USE_EXTERNAL_MODULES=tp_cpu_platform`` (this folder on ``PYTHONPATH``)
and selected with ``VERL_PLATFORM=tp_cpu``. It registers ``TpCpuPlatform`` with ``verl.plugin.platform``:

- ``device_name`` is ``"cpu"`` and ``current_device()`` returns ``"cpu"`` (verl passes it to ``.to(...)``; an int
  would mean accelerator 0);
- ``device_module`` is ``torch.cpu`` completed with the ``torch.cuda`` calls verl makes (memory statistics read 0,
  cache and IPC calls do nothing, the RNG state is torch's CPU RNG, ``mem_get_info`` reports host memory);
- the communication backend is ``gloo``; seeds go to torch's CPU RNG.

One runtime patch, because no extension point covers it: verl builds its process-group backend as
``f"cpu:gloo,{device_name}:{backend}"``, which becomes ``"cpu:gloo,cpu:gloo"`` here and torch rejects (duplicate
device). ``_patch_process_group_init`` wraps the two functions in ``verl.utils.distributed`` that build it so that,
when this platform is the active one, the backend is normalised to plain ``"gloo"``; on any other platform they
behave exactly as before. This module is imported by ``verl/__init__.py``, before the modules that bind those
functions by name (``verl.workers.engine_workers``; ``verl.trainer.sft_trainer`` imports it at call time).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import torch
import torch.cpu
from verl.plugin.platform import PlatformBase, PlatformRegistry, get_platform

PLATFORM_NAME = "tp_cpu"
BACKEND = "gloo"


def _host_memory() -> tuple[int, int]:
    """(available, total) host memory in bytes."""
    page = os.sysconf("SC_PAGE_SIZE")
    return os.sysconf("SC_AVPHYS_PAGES") * page, os.sysconf("SC_PHYS_PAGES") * page


def _zero(*args: Any, **kwargs: Any) -> int:
    return 0


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


def _build_device_module() -> ModuleType:
    """``torch.cpu`` plus the ``torch.cuda``-style calls verl makes on ``get_torch_device()``."""
    module = ModuleType("tp_cpu_device", "torch.cpu completed with no-op accelerator calls for verl on CPU.")
    for name in dir(torch.cpu):
        if not name.startswith("_"):
            setattr(module, name, getattr(torch.cpu, name))
    extras: dict[str, Any] = {
        "empty_cache": _noop,
        "ipc_collect": _noop,
        "reset_peak_memory_stats": _noop,
        "set_per_process_memory_fraction": _noop,
        "memory_allocated": _zero,
        "memory_reserved": _zero,
        "max_memory_allocated": _zero,
        "max_memory_reserved": _zero,
        "mem_get_info": lambda device=None: _host_memory(),
        "get_device_name": lambda device=None: "cpu",
        "get_rng_state": lambda device="cpu": torch.get_rng_state(),
        "set_rng_state": lambda new_state, device="cpu": torch.set_rng_state(new_state),
        "manual_seed": torch.manual_seed,
        "manual_seed_all": torch.manual_seed,
    }
    for name, value in extras.items():
        setattr(module, name, value)
    return module


_DEVICE_MODULE = _build_device_module()


@PlatformRegistry.register(platform=PLATFORM_NAME)
class TpCpuPlatform(PlatformBase):
    """verl platform for CPU-only hosts (see module docstring)."""

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> ModuleType:
        return _DEVICE_MODULE

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        # Never auto-detected: only selected explicitly with VERL_PLATFORM=tp_cpu.
        return False

    def current_device(self) -> str:  # type: ignore[override]  # verl passes it to .to(); an int means accelerator 0
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: int | None = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        return BACKEND

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"

    @contextmanager
    def nvtx_range(self, msg: str) -> Iterator[None]:
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        # verl schedules its workers on Ray "GPU" resources; a CPU run gives Ray logical GPUs.
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return ["RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"]

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None


def _active() -> bool:
    return isinstance(get_platform(), TpCpuPlatform)


def normalise_backend(backend: str | None) -> str:
    """``"cpu:gloo,cpu:gloo"`` (or None) -> ``"gloo"``; other strings unchanged."""
    if backend is None:
        return BACKEND
    pairs = {pair.strip() for pair in backend.lower().split(",") if pair.strip()}
    if pairs and all(pair.split(":")[-1] == BACKEND for pair in pairs):
        return BACKEND
    return backend


def _initialize_global_process_group(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(timeout_second: int = 36000) -> tuple[int, int, int]:
        if not _active():
            return original(timeout_second)
        # Same as verl's version, with a backend torch accepts on CPU.
        from datetime import timedelta

        torch.distributed.init_process_group(
            backend=BACKEND,
            timeout=timedelta(seconds=timeout_second),
            init_method=os.environ.get("DIST_INIT_METHOD", None),
        )
        return int(os.environ["LOCAL_RANK"]), int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])

    return wrapper


def _initialize_global_process_group_ray(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(timeout_second: int | None = None, backend: str | None = None) -> None:
        if _active():
            backend = normalise_backend(backend)
        original(timeout_second=timeout_second, backend=backend)

    return wrapper


def _patch_process_group_init() -> None:
    """Wrap verl's process-group initialisers (see module docstring); idempotent."""
    import verl.utils.distributed as dist_utils

    if getattr(dist_utils, "_tp_cpu_patched", False):
        return
    wrappers = {
        "initialize_global_process_group": _initialize_global_process_group,
        "initialize_global_process_group_ray": _initialize_global_process_group_ray,
    }
    for name, wrap in wrappers.items():
        setattr(dist_utils, name, wrap(getattr(dist_utils, name)))
    dist_utils._tp_cpu_patched = True  # type: ignore[attr-defined]
    wrapped_ray = getattr(dist_utils, "initialize_global_process_group_ray")  # noqa: B009
    for name in ("verl.workers.engine_workers", "verl.checkpoint_engine.base"):
        module = sys.modules.get(name)  # imported before us: rebind their copies too
        if module is not None and hasattr(module, "initialize_global_process_group_ray"):
            module.initialize_global_process_group_ray = wrapped_ray  # type: ignore[attr-defined]


_patch_process_group_init()
