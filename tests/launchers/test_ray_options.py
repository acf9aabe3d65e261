"""The ray launcher's options: the Job Submission address and the job's environment."""

from __future__ import annotations

import pytest

from launchers.options import RayOptions, parse_options
from trainer_platform.errors import SpecError


def _options(**kw: object) -> RayOptions:
    opts = parse_options(RayOptions, {"name": "ray", "address": "http://head:8265", **kw})
    assert isinstance(opts, RayOptions)
    return opts


@pytest.mark.parametrize(
    "address", ["http://head:8265", "https://ray.example.org/", "http://10.0.0.1", "http://[::1]:80"]
)
def test_addresses_taken(address: str) -> None:
    assert _options(address=address).address == address


@pytest.mark.parametrize("address", ["http://head:abc", "http://head:99999", "http://head:0", "head:8265", "http://"])
def test_addresses_refused(address: str) -> None:
    with pytest.raises(SpecError, match="Job Submission address") as err:
        _options(address=address)
    assert err.value.key == "launcher.address"


def test_a_secret_in_env_is_refused_without_echoing_it() -> None:
    plain = {"CUDA_LAUNCH_BLOCKING": "1", "TOKENIZERS_PARALLELISM": "false"}
    assert _options(env=plain).env == plain
    with pytest.raises(SpecError, match="HF_TOKEN") as err:
        _options(env={"HF_TOKEN": "hf_secretvalue123"})
    assert err.value.key == "launcher.env.HF_TOKEN" and "hf_secretvalue123" not in str(err.value)
