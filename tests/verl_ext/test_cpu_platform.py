"""verl/tp_cpu_platform.py: verl picks it up through its own extension points and can start a gloo process group.

Runs in a subprocess with the environment the job builder gives verl's processes (importing verl takes ~5 s).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

from trainer_platform.paths import verl_ext_dir

PROBE = textwrap.dedent(
    """
    import json, torch, torch.distributed as dist
    from verl.plugin.platform import get_platform
    from verl.utils import device
    from verl.utils.distributed import initialize_global_process_group, destroy_global_process_group

    platform = get_platform()
    torch_device = device.get_torch_device()
    platform.manual_seed(7)
    first = torch.rand(2)
    torch.manual_seed(7)
    state = torch_device.get_rng_state()
    torch_device.set_rng_state(state)
    ranks = initialize_global_process_group(timeout_second=60)
    tensor = torch.ones(3)
    dist.all_reduce(tensor)
    result = {
        "cls": type(platform).__name__,
        "device_name": device.get_device_name(),
        "backend": device.get_nccl_backend(),
        "current_device": platform.current_device(),
        "ranks": list(ranks),
        "pg_backend": dist.get_backend(),
        "world_size": dist.get_world_size(),
        "all_reduce": tensor.tolist(),
        "seeded": torch.equal(first, torch.rand(2)),
        "memory_allocated": torch_device.memory_allocated(),
        "mem_total_gb": torch_device.mem_get_info()[1] / 2**30,
        "empty_cache": torch_device.empty_cache(),
        "synchronize": torch_device.synchronize(),
    }
    destroy_global_process_group()
    print("RESULT " + json.dumps(result))
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_platform_is_selected_and_runs_gloo(tmp_path: os.PathLike[str]) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(verl_ext_dir()),
        "VERL_USE_EXTERNAL_MODULES": "tp_cpu_platform",
        "VERL_PLATFORM": "tp_cpu",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    assert result["cls"] == "TpCpuPlatform"
    assert result["device_name"] == "cpu"
    assert result["backend"] == "gloo"
    assert result["current_device"] == "cpu"
    assert result["ranks"] == [0, 0, 1]
    assert result["pg_backend"] == "gloo"
    assert result["world_size"] == 1
    assert result["all_reduce"] == [1.0, 1.0, 1.0]
    assert result["seeded"] is True
    assert result["memory_allocated"] == 0
    assert result["mem_total_gb"] > 0


def test_plugin_is_inert_without_verl_platform(tmp_path: os.PathLike[str]) -> None:
    """Imported but not selected, the plugin registers itself and leaves verl's own behaviour alone."""
    code = textwrap.dedent(
        """
        from verl.plugin.platform import PlatformRegistry, get_platform
        import tp_cpu_platform
        assert "tp_cpu" in PlatformRegistry.registered_names()
        assert not isinstance(get_platform(), tp_cpu_platform.TpCpuPlatform)
        assert tp_cpu_platform.normalise_backend("cpu:gloo,cpu:gloo") == "gloo"
        assert tp_cpu_platform.normalise_backend("cpu:gloo,cuda:nccl") == "cpu:gloo,cuda:nccl"
        print("OK")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "VERL_PLATFORM"}
    env.update({"PYTHONPATH": str(verl_ext_dir()), "VERL_USE_EXTERNAL_MODULES": "tp_cpu_platform"})
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK" in proc.stdout
