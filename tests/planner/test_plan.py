"""The planner: compute=auto on CPU and GPU machines, rollout engine choice, rollout TP, micro batches."""

from __future__ import annotations

import pytest

from trainer_platform.batch import batch_math
from trainer_platform.compose import compose_config
from trainer_platform.errors import SpecError
from trainer_platform.planner import Hardware, plan
from trainer_platform.planner.hardware import accelerator_slug, detect_hardware
from trainer_platform.spec import RunSpec

CPU_BOX = Hardware(gpus=(), gpu_memory_gib=0.0, cpu_cores=2)
# a GPU machine cannot exist here: the planner is handed a described one (it never touches a device itself)
GPU_BOX = Hardware(gpus=("NVIDIA H100 80GB HBM3",) * 8, gpu_memory_gib=79.6, cpu_cores=96)


def spec_of(*overrides: str) -> RunSpec:
    return RunSpec.from_config(compose_config(list(overrides)))


def test_auto_without_gpu_trains_on_cpu_with_the_hf_rollout() -> None:
    p = plan(spec_of("algorithm=grpo", "data=tiny_math"), hardware=CPU_BOX, engines=("vllm",))
    assert (p.platform, p.accelerator, p.world_size, p.rollout_engine, p.rollout_tp) == ("cpu", "cpu", 1, "hf", 1)
    assert any("no GPU found" in n for n in p.notes)


def test_auto_with_gpus_uses_an_installed_engine() -> None:
    p = plan(spec_of("algorithm=grpo", "data=tiny_math"), hardware=GPU_BOX, engines=("vllm", "sglang"))
    assert (p.platform, p.accelerator, p.gpus_per_node, p.rollout_engine) == ("cuda", "h100", 8, "vllm")
    assert p.gpu_memory_gib == 79.6


def test_auto_with_gpus_but_no_engine_falls_back_to_hf_and_says_so() -> None:
    p = plan(spec_of("algorithm=grpo", "data=tiny_math"), hardware=GPU_BOX, engines=())
    assert p.rollout_engine == "hf" and any("no vLLM or SGLang installed" in n for n in p.notes)


def test_sft_has_no_rollout() -> None:
    p = plan(spec_of("algorithm=sft", "data=tiny_sft"), hardware=CPU_BOX)
    assert p.rollout_engine is None


def test_vllm_on_cpu_is_refused() -> None:
    with pytest.raises(SpecError, match="needs a GPU"):
        plan(spec_of("algorithm=grpo", "data=tiny_math", "compute=cpu", "compute.rollout_engine=vllm"))


def test_cpu_named_without_a_count_trains_on_one_rank() -> None:
    p = plan(spec_of("algorithm=grpo", "data=tiny_math", "compute.accelerator=cpu"), hardware=GPU_BOX)
    assert (p.platform, p.gpus_per_node, p.world_size) == ("cpu", 1, 1)


def test_a_gpu_named_without_a_count_is_refused_naming_the_key() -> None:
    with pytest.raises(SpecError, match="compute.gpus_per_node") as err:
        plan(spec_of("algorithm=grpo", "data=tiny_math", "compute.accelerator=h100"), hardware=GPU_BOX)
    assert "compute.gpus_per_node=" in err.value.hint


def test_rollout_tp_grows_with_the_model() -> None:
    shape = ("data.max_prompt_length=512", "data.max_response_length=1024", "algorithm.batch_size=1024")
    small = plan(spec_of("algorithm=grpo", "data=tiny_math", "model=qwen2_5_7b", "compute=8xh100", *shape))
    big = plan(spec_of("algorithm=grpo", "data=tiny_math", "model=qwen2_5_32b", "compute=8xh100", *shape))
    assert small.rollout_tp < big.rollout_tp


def test_explicit_rollout_tp_must_divide_the_node() -> None:
    with pytest.raises(SpecError, match="rollout_tp"):
        plan(spec_of("algorithm=grpo", "data=tiny_math", "compute=8xh100", "compute.rollout_tp=3"))


def test_micro_batch_is_a_divisor_of_the_per_rank_batch() -> None:
    spec = spec_of(
        "algorithm=grpo",
        "model=qwen2_5_7b",
        "data=tiny_math",
        "compute=8xh100",
        "algorithm.batch_size=1024",
        "algorithm.mini_batch_size=256",
    )
    p = plan(spec)
    math = batch_math(spec, p)
    assert math.per_rank_per_update == 256 * 8 // 8  # tiny_math samples rollout_n 8
    assert math.per_rank_per_update % p.micro_batch_size_per_gpu == 0
    assert p.micro_batch_size_per_gpu * 96 <= 16384


def test_batch_math_shows_the_numbers() -> None:
    spec = spec_of("algorithm=grpo", "data=tiny_math", "compute=8xh100", "algorithm.rollout_n=5")
    with pytest.raises(SpecError) as info:
        batch_math(spec, plan(spec))
    assert "mini_batch_size 4 x rollout_n 5 = 20" in info.value.problem and "8 ranks" in info.value.problem


def test_sft_batch_must_split_over_ranks() -> None:
    spec = spec_of(
        "algorithm=sft",
        "data=tiny_sft",
        "compute=8xh100",
        "algorithm.batch_size=36",
        "algorithm.micro_batch_size_per_gpu=1",
    )
    with pytest.raises(SpecError, match="does not split over 8 ranks"):
        batch_math(spec, plan(spec))


def test_slugs() -> None:
    assert accelerator_slug("NVIDIA A100-SXM4-80GB") == "a100_80g"
    assert accelerator_slug("NVIDIA A100-SXM4-40GB") == "a100_40g"
    assert accelerator_slug("NVIDIA L4") == "l4"
    assert accelerator_slug("NVIDIA H200") == "h200"


def test_detect_hardware_here_is_consistent() -> None:
    hw = detect_hardware()
    assert hw.cpu_cores >= 1 and (hw.gpu_memory_gib > 0) == hw.has_gpu
