"""The `hf` rollout backend for verl: generation on plain transformers, so RL runs without vLLM/SGLang/TRT-LLM.

Importing this module (verl does it in every process when it is listed in `VERL_USE_EXTERNAL_MODULES`) registers
rollout name `hf` at verl's two extension points:

- `RolloutReplicaRegistry["hf"]` -> `HFReplica`: launches one `HFRolloutServer` Ray actor per replica, which the agent
  loop's `LLMServerClient` calls for token-in/token-out generation;
- `_ROLLOUT_REGISTRY[("hf", "async")]` -> `tp_hf_rollout_adapter.HFServerAdapter`: the worker-side `BaseRollout` through
  which verl's weight sync (`update_weights`) pushes every actor update into the server's model.

Select it with `actor_rollout_ref.rollout.name=hf` (and `rollout.tensor_model_parallel_size=1`). The repo's `verl/`
folder must be on `PYTHONPATH` (the module is imported by its top-level name).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tp_hf_rollout_adapter import server_actor_name
from verl.workers.rollout import base as rollout_base
from verl.workers.rollout.replica import RolloutReplica, RolloutReplicaRegistry

logger = logging.getLogger(__name__)

ROLLOUT_NAME = "hf"
ADAPTER_FQN = "tp_hf_rollout_adapter.HFServerAdapter"
# How often verl's v1 replay buffer re-reads TransferQueue while it waits for a step's rollouts (its own default: 2 s).
REPLAY_POLL_S = float(os.environ.get("TP_HF_ROLLOUT_REPLAY_POLL_S", "0.05"))
_REPLAY_BUFFER_MODULE = "verl.trainer.ppo.v1.replay_buffer"


class HFReplica(RolloutReplica):
    """One `hf` rollout replica: a single server actor on the node of the replica's first worker."""

    async def launch_servers(self) -> None:
        """Start the replica's `HFRolloutServer` and load its model."""
        from tp_hf_rollout_server import HFRolloutServer

        if self.workers:
            node_id = await self.workers[0].__ray_call__.remote(lambda _: ray.get_runtime_context().get_node_id())
        else:
            node_id = ray.get_runtime_context().get_node_id()
        if self.is_reward_model:
            suffix = f"_reward{self.name_suffix}"
        elif self.is_teacher_model:
            suffix = f"_teacher{self.name_suffix}"
        else:
            suffix = self.name_suffix
        server = (
            ray.remote(HFRolloutServer)
            .options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False),
                name=server_actor_name(self.replica_rank, 0, suffix),
                max_concurrency=self.max_concurrency,
                num_cpus=0,
            )
            .remote(
                config=self.config,
                model_config=self.model_config,
                rollout_mode=self.rollout_mode,
                replica_rank=self.replica_rank,
            )
        )
        _shorten_replay_buffer_poll()
        await server.launch_server.remote()
        address, _port = await server.get_server_address.remote()
        self.servers = [server]
        self._server_handle = server
        self._server_address = address

    async def sleep(self) -> None:
        """Drain in-flight requests, then sleep (kept for verl's call order; no memory is freed on CPU)."""
        await asyncio.gather(*[s.wait_for_requests_to_drain.remote() for s in self.servers])
        await super().sleep()


def _shorten_replay_buffer_poll() -> None:
    """Make verl's v1 trainer notice finished rollouts within `REPLAY_POLL_S` instead of its fixed 2 s.

    `ReplayBuffer.sample` (the whole `timing_s/gen` of a v1 step) checks TransferQueue, then `time.sleep(2.0)`s until
    the step's groups are finished, so every rollout took a multiple of 2 s however fast the engine was; `poll_interval`
    is not a config key. Called from `launch_servers`, i.e. in the trainer's process once it has built its replay
    buffer, so only jobs that use this rollout are affected. `poll_interval` is lowered only around verl's sleep (the
    separate-async trainer's idle heuristic reads it too); a custom sampler's shorter interval is kept.
    """
    module = sys.modules.get(_REPLAY_BUFFER_MODULE)
    if module is None or getattr(module.ReplayBuffer._wait_for_next_poll, "_tp_fast", False):
        return
    original = module.ReplayBuffer._wait_for_next_poll

    def _wait_for_next_poll(self, partition_id: str, last_debug_time: float) -> float:
        interval = self.poll_interval
        self.poll_interval = min(interval, REPLAY_POLL_S)  # verl's own method sleeps it, then logs progress
        try:
            return original(self, partition_id, last_debug_time)
        finally:
            self.poll_interval = interval

    _wait_for_next_poll._tp_fast = True  # type: ignore[attr-defined]
    module.ReplayBuffer._wait_for_next_poll = _wait_for_next_poll


def _load_hf_replica() -> type[RolloutReplica]:
    return HFReplica


def register() -> None:
    """Register rollout name `hf` with verl (idempotent)."""
    RolloutReplicaRegistry.register(ROLLOUT_NAME, _load_hf_replica)
    rollout_base._ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = ADAPTER_FQN


register()
