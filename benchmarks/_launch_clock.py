"""Run a Python script with a Hydra launcher plugin's `launch` wrapped to write the wall-clock time it is entered
(the moment Hydra's sweeper hands it the sweep) into a file, for bench_slurm_submit.py.

    python _launch_clock.py CLOCK_FILE MODULE:CLASS SCRIPT [ARGS...]
"""

from __future__ import annotations

import importlib
import runpy
import sys
import time
from pathlib import Path
from typing import Any

clock, target, script, *args = sys.argv[1:]
sys.path.insert(0, str(Path(script).resolve().parent))
module_name, _, class_name = target.partition(":")
cls = getattr(importlib.import_module(module_name), class_name)
original = cls.launch


def launch(self: Any, *a: Any, **kw: Any) -> Any:
    Path(clock).write_text(repr(time.time()))
    return original(self, *a, **kw)


cls.launch = launch
sys.argv = [script, *args]
runpy.run_path(script, run_name="__main__")
