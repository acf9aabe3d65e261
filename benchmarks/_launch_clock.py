"""Run a Python script with the `launch` of every Hydra launcher it instantiates wrapped to write the wall-clock time
it is entered (the moment Hydra's sweeper hands the sweep to the launcher plugin) into a file, for
bench_slurm_submit.py. The wrapper sits on the launcher instance: Hydra re-executes the modules of hydra_plugins/
when it scans them, so a patched plugin class would not survive. The platform's grid does not go through Hydra's
multirun: with --submit-clock (the platform's side) the same clock is the moment its checked runs are handed to
the sweep session's `launch`.

    python _launch_clock.py CLOCK_FILE SCRIPT [ARGS...] [--submit-clock FILE]
"""

from __future__ import annotations

import runpy
import sys
import time
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins

clock, script, *args = sys.argv[1:]
sys.path.insert(0, str(Path(script).resolve().parent))
instantiate = Plugins.instantiate_launcher


def instantiate_timed(self: Plugins, *a: Any, **kw: Any) -> Any:
    launcher = instantiate(self, *a, **kw)
    launch = launcher.launch

    def timed(*la: Any, **lkw: Any) -> Any:
        Path(clock).write_text(repr(time.time()))
        return launch(*la, **lkw)

    launcher.launch = timed
    return launcher


Plugins.instantiate_launcher = instantiate_timed  # type: ignore[method-assign]
if "--submit-clock" in args:  # the platform's own launcher.submit too (its module is not re-executed by Hydra)
    at = args.index("--submit-clock")
    submit_clock = args[at + 1]
    del args[at : at + 2]
    from launchers.slurm import SlurmLauncher
    from trainer_platform.sweep.batch import SweepSession

    session_launch = SweepSession.launch

    def session_launch_timed(self: SweepSession, *a: Any, **kw: Any) -> Any:
        Path(clock).write_text(repr(time.time()))
        return session_launch(self, *a, **kw)

    SweepSession.launch = session_launch_timed  # type: ignore[method-assign]
    submit = SlurmLauncher.submit

    def submit_timed(self: SlurmLauncher, *a: Any, **kw: Any) -> Any:
        Path(submit_clock).write_text(repr(time.time()))
        return submit(self, *a, **kw)

    SlurmLauncher.submit = submit_timed  # type: ignore[method-assign]
sys.argv = [script, *args]
runpy.run_path(script, run_name="__main__")
