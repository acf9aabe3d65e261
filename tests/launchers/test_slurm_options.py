"""The slurm launcher's pure parts: options (validated, did-you-mean), the sbatch script (golden files, single job and
array), and the job's GPU request coming from the plan."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from launchers.options import SlurmOptions, parse_options, slurm_minutes
from launchers.render import render_sbatch, runner_command, sbatch_parameters
from trainer_platform.errors import SpecError

GOLDEN = Path(__file__).parent / "golden"


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("TP_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{path} differs; rerun with TP_UPDATE_GOLDEN=1 if the change is intended"


def _params(**kw: object) -> dict[str, object]:
    opts = SlurmOptions.model_validate(
        {
            "name": "slurm",
            "partition": "gpu",
            "account": "proj-42",
            "qos": "high",
            "time": "1-02:03:04",
            "mem": "64G",
            "cpus_per_task": 16,
            "constraint": "a100&ib",
            "exclude": "gpu[01-03]",
            "sbatch_args": ["--mail-type=END", "--exclusive"],
            "setup": ["module load cuda/12.4", "  ", "source /shared/venvs/tp/bin/activate"],
            **kw,
        }
    )
    return sbatch_parameters(
        job_name="tp-grpo-qwen",
        nnodes=2,
        gpus_per_node=8,
        partition=opts.partition,
        account=opts.account,
        qos=opts.qos,
        time_min=opts.time_minutes,
        mem=opts.mem,
        cpus_per_task=opts.cpus_per_task,
        constraint=opts.constraint,
        exclude=opts.exclude,
        array_parallelism=opts.array_parallelism,
        extra=opts.extra_sbatch,
        setup=opts.setup,
    )


def test_sbatch_golden_single_job() -> None:
    folder = "/shared/runs/grpo-qwen/.slurm"
    text = render_sbatch(_params(), folder=folder, command=runner_command("/venv/bin/python", "/code", folder))
    _check_golden("slurm_sbatch.sh", text)


def test_sbatch_golden_array() -> None:
    folder = "/shared/runs/.slurm/20260101T000000-abcd"
    command = runner_command("/opt/my env/bin/python", "/code", folder)
    text = render_sbatch(_params(array_parallelism=3), folder=folder, command=command, array_size=16)
    assert "#SBATCH --array=0-15%3" in text.splitlines()
    _check_golden("slurm_sbatch_array.sh", text)


def test_gpus_and_nodes_come_from_the_job() -> None:
    cpu = sbatch_parameters(job_name="x", nnodes=1, gpus_per_node=0)
    assert "gpus_per_node" not in cpu and cpu["nodes"] == 1  # a CPU job asks for no GPUs
    text = render_sbatch(_params(), folder="/f", command="true")
    assert "#SBATCH --gpus-per-node=8" in text and "#SBATCH --nodes=2" in text


@pytest.mark.parametrize(
    "value,minutes",
    [(90, 90), ("90", 90), ("10:30", 11), ("01:00:00", 60), ("2-00", 2880), ("1-02:03", 1563), ("0:0:59", 1)],
)
def test_time_formats(value: int | str, minutes: int) -> None:
    assert slurm_minutes(value) == minutes


@pytest.mark.parametrize(
    "key,value,problem",
    [
        ("partiton", "gpu", "did you mean 'partition'"),
        ("time", "1h", "not a Slurm time limit"),
        ("time", 0, "must be positive"),
        ("mem", "64GB", "not a Slurm memory size"),
        ("partition", "gpu\n#SBATCH --wrap=evil", "not a plain Slurm value"),
        ("account", "a b", "not a plain Slurm value"),
        ("sbatch_args", ["--array=0-3"], "launcher.array_parallelism"),
        ("sbatch_args", ["--partition=x"], "launcher.partition"),
        ("sbatch_args", ["-p x"], "not an sbatch option"),
        ("sbatch_args", ["--comment=a;rm -rf /"], "not an sbatch option"),
        ("cpus_per_task", 0, "greater than 0"),
        ("array_parallelism", -1, "greater than 0"),
        ("ray_port_base", 80, "greater than or equal to 1024"),
        ("ray_port_base", 40000, "less than or equal to 31768"),
        ("ray_wait_s", 0, "greater than 0"),
        ("master_port", 70000, "less than or equal to 65535"),
    ],
)
def test_bad_options_name_the_key(key: str, value: object, problem: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_options(SlurmOptions, {"name": "slurm", key: value})
    assert err.value.key == f"launcher.{key}"
    assert problem in str(err.value)


def test_a_setup_line_given_as_a_string_is_told_to_write_a_list() -> None:
    with pytest.raises(SpecError) as err:
        parse_options(SlurmOptions, {"name": "slurm", "setup": "module load cuda"})
    assert err.value.key == "launcher.setup" and "\"launcher.setup=['module load cuda']\"" in err.value.hint


def test_conf_file_matches_the_options() -> None:
    """conf/launcher/slurm.yaml sets exactly the options the launcher takes (the issue's names)."""
    from omegaconf import OmegaConf

    conf = OmegaConf.to_container(OmegaConf.load(Path(__file__).parents[2] / "conf" / "launcher" / "slurm.yaml"))
    assert isinstance(conf, dict)
    assert set(conf) == set(SlurmOptions.model_fields)
    assert set(conf) == {
        "name", "wait", "setup", "partition", "account", "qos", "time", "mem", "cpus_per_task", "constraint",
        "exclude", "array_parallelism", "sbatch_args", "ray_port_base", "ray_wait_s", "master_port",
    }  # fmt: skip
    parse_options(SlurmOptions, conf)
