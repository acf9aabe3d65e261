"""Build step the declarative pyproject.toml cannot express: a wheel carries the checkout's conf/, verl/ and
sweeps/ inside the package (trainer_platform/_shipped/), where trainer_platform.paths finds them when the
platform runs from an installed wheel. They stay top-level folders in the checkout: verl/ must not become an
importable package there (it would shadow the real verl, see DESIGN.md), and editable installs read them in place.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED_TREES = ("conf", "verl", "sweeps")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "local")


class BuildPyWithShippedTrees(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the checkout's folders in place
            return
        root = Path(__file__).resolve().parent
        for name in SHIPPED_TREES:
            target = Path(self.build_lib) / "trainer_platform" / "_shipped" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(root / name, target, ignore=_IGNORE)


setup(cmdclass={"build_py": BuildPyWithShippedTrees})
