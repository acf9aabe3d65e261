"""An installed (non-editable) wheel runs a job from outside the checkout: conf/, verl/ and sweeps/ travel inside
the package (setup.py), trainer_platform.paths finds them there, and `trainer-platform train` is the entry point.

The wheel goes into a fresh venv whose only other packages are this venv's (a .pth line, no copies: --no-deps), and
the checkout is nowhere on its path; every command runs in a temporary directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import REPO_ROOT, run_dir_of

pytestmark = pytest.mark.slow  # builds a wheel, then a one-step SFT


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a venv holding the built wheel (the shared venv's packages reachable through a .pth line)."""
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO_ROOT), "--no-deps", "--no-build-isolation", "-q",
         "-w", str(root / "dist")],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    purelib = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    # a plain path line: the shared venv's .pth files (its editable install of this checkout) are not processed
    (purelib / "shared_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next((root / "dist").glob("trainer_platform-*.whl"))
    subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "-q", str(wheel)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return venv / "bin"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "PYTHONSAFEPATH": "1"}


def test_the_installed_package_uses_its_own_copies(installed: Path, tmp_path: Path) -> None:
    code = "import json, trainer_platform.paths as p; print(json.dumps([str(p.conf_dir()), str(p.verl_ext_dir())]))"
    res = subprocess.run([installed / "python", "-c", code], cwd=tmp_path, env=_env(), capture_output=True,
                         text=True, timeout=120, check=True)  # fmt: skip
    conf, verl_ext = map(Path, json.loads(res.stdout))
    assert REPO_ROOT not in conf.parents and REPO_ROOT not in verl_ext.parents
    assert (conf / "train.yaml").is_file() and (verl_ext / "tp_cpu_platform.py").is_file()
    assert not (verl_ext / "__init__.py").exists()  # never a package that could shadow the real verl
    assert not (conf / "local").exists()  # a user's cluster files never ship


def test_train_dry_run_and_a_tiny_sft_from_an_installed_wheel(installed: Path, tmp_path: Path) -> None:
    train = [str(installed / "trainer-platform"), "train", "algorithm=sft", "data=tiny_sft"]
    dry = subprocess.run([*train, "dry_run=true"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    assert "_shipped/verl" in next(tmp_path.glob("runs/.dry-runs/*/launch.sh")).read_text()
    bad = subprocess.run([*train, "algorithm.lr=-1"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert bad.returncode == 2 and "algorithm.lr" in bad.stderr and "Traceback" not in bad.stderr
    res = subprocess.run([*train, "train.steps=1"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    run = run_dir_of(res)
    assert run.parent == tmp_path / "runs"
    assert json.loads((run / "status.json").read_text())["state"] == "succeeded"
    assert any(json.loads(line)["step"] == 1 for line in (run / "metrics.jsonl").read_text().splitlines())
