"""The repo's verl/ folder holds modules verl imports by name; it must never shadow the real verl package."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO_ROOT


def test_verl_folder_has_no_init() -> None:
    assert (REPO_ROOT / "verl").is_dir()
    assert not (REPO_ROOT / "verl" / "__init__.py").exists()


def test_import_verl_from_the_repo_root_is_the_installed_package() -> None:
    code = "import importlib.util, sys; s = importlib.util.find_spec('verl'); print(s.origin)"
    for cwd in (REPO_ROOT, REPO_ROOT / "verl"):
        out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "site-packages" in out.stdout and str(REPO_ROOT / "verl" / "__init__") not in out.stdout


def test_python_m_from_the_repo_root_sees_the_real_verl() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import verl.trainer.config as c; print(c.__file__)"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "site-packages" in out.stdout
