"""The `train.py` command: argument handling, error reporting and exit codes around the pipeline.

Besides key=value overrides and `-m`, train.py takes Hydra's own inspection flags (`--cfg job|hydra|all`, `-c`,
`--package`, `--resolve`, `--info`, `--shell-completion`/`-sc`, `--hydra-help`) and hands them to Hydra, which
prints and runs nothing; the overrides beside them are checked first, with our messages.
"""

from __future__ import annotations

import sys
from typing import Any

from trainer_platform.errors import SpecError

USAGE = """usage: python train.py [key=value ...] [-m] [--cfg job|hydra|all [--resolve] [--package PKG]]

  python train.py                                   train the default job (GRPO, tiny model, tiny data, this machine)
  python train.py algorithm=grpo data=tiny_math     pick options of the config groups in conf/ (listed below)
  python train.py algorithm.lr=2e-6 train.steps=20  set single values
  python train.py ... dry_run=true                  print the exact verl command, launch nothing
  python train.py resume=true resume_dir=runs/NAME  continue a run from its last checkpoint
  python train.py -m algorithm.lr=1e-6,2e-6         one run per value (a sweep, in runs/<sweep>/)
  python train.py -m +sweep=NAME                    a named sweep from sweeps/NAME.yaml (grid, zip, seeds, search)
  python train.py ... --cfg job [--resolve]         print the composed config (Hydra's --cfg; also --info)
  eval "$(python train.py -sc install=bash)"        tab completion of groups, options and keys in bash"""

# Hydra's flags that print something and run nothing; the value each takes (None: none, "?": an optional one)
_INSPECT = {
    "--cfg": "1",
    "-c": "1",
    "--info": "?",
    "-i": "?",
    "--shell-completion": "1",
    "-sc": "1",
    "--hydra-help": None,
}
_MODIFIERS = {"--resolve": None, "--package": "1", "-p": "1"}  # change what --cfg prints
_INFO_CHOICES = ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")
_REFUSED = {
    "--config-path": "train.py composes conf/train.yaml; pick a named run with +experiment=NAME",
    "-cp": "train.py composes conf/train.yaml; pick a named run with +experiment=NAME",
    "--config-name": "train.py composes conf/train.yaml; pick a named run with +experiment=NAME",
    "-cn": "train.py composes conf/train.yaml; pick a named run with +experiment=NAME",
    "--config-dir": "put config files in conf/ (or conf/local/)",
    "-cd": "put config files in conf/ (or conf/local/)",
    "--experimental-rerun": "rerun a run with `trainer-platform resume RUN`",
    "--run": "a single run is the default; -m runs a sweep",
    "-r": "a single run is the default; -m runs a sweep",
}


def help_text() -> str:
    """The usage lines, then every config group with its options and the first sentence of each file's comment."""
    from trainer_platform.compose import describe_groups

    heading = "config groups (GROUP=OPTION; a named run from experiment/ is +experiment=NAME):"
    return "\n".join([USAGE, "", heading, *describe_groups()])


def main(argv: list[str]) -> int:
    """Run train.py with `argv` (without the program name); returns the process exit code."""
    try:
        if any(a in ("-h", "--help") for a in argv):
            print(help_text())
            return 0
        flags = {a.split("=", 1)[0] for a in argv if a.startswith("-")}
        if flags & set(_INSPECT):
            return _hydra_inspect(argv)
        _check_flags(flags)
        if any(a in ("-m", "--multirun") for a in argv):
            return _multirun(argv)
        if any(a.split("=", 1)[0].lstrip("+") == "sweep" for a in argv):
            raise SpecError("sweep", "a sweep file runs many runs: it needs -m", "python train.py -m +sweep=NAME")
        from trainer_platform.pipeline import run_overrides

        return run_overrides(argv)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _check_flags(flags: set[str]) -> None:
    for flag in sorted(flags - {"-m", "--multirun"}):
        if flag in _MODIFIERS:
            raise SpecError(flag, "only changes what --cfg prints", f"add --cfg job|hydra|all, e.g. --cfg job {flag}")
        if flag in _REFUSED:
            raise SpecError(flag, "is a Hydra flag train.py does not take", _REFUSED[flag])
        raise SpecError(
            flag,
            "is not an option of train.py",
            "train.py takes key=value overrides, -m, --help, and Hydra's --cfg/--info/--shell-completion",
        )


def _split_inspect(argv: list[str]) -> tuple[list[str], list[str]]:
    """(flags with their values, overrides) of an inspection command line."""
    flags: list[str] = []
    overrides: list[str] = []
    takes: str | None = None
    for arg in argv:
        if takes == "1" or (takes == "?" and arg in _INFO_CHOICES):
            flags.append(arg)
            takes = None
            continue
        takes = None
        if arg.startswith("-"):
            name = arg.split("=", 1)[0]
            if name in _REFUSED or (
                name not in _INSPECT and name not in _MODIFIERS and name not in ("-m", "--multirun")
            ):
                _check_flags({name})
            flags.append(arg)
            takes = None if "=" in arg else {**_INSPECT, **_MODIFIERS}.get(name)
        else:
            overrides.append(arg)
    return flags, overrides


def _hydra_inspect(argv: list[str]) -> int:
    """Hydra's own --cfg/--info/--shell-completion on train.py's config, after our checks of the overrides."""
    flags, overrides = _split_inspect(argv)
    if not any(f.split("=", 1)[0] in ("-sc", "--shell-completion") for f in flags):
        from trainer_platform.compose import compose_config

        if any(f in ("-m", "--multirun") for f in flags):
            raise SpecError("-m", "cannot go with --cfg/--info (Hydra shows one config)", "drop -m; give one value")
        # hydra.* keys are fine here: `--cfg hydra hydra.job.name=x` shows Hydra's own config
        compose_config([o for o in overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/"))])
    import logging

    import hydra

    from trainer_platform.paths import conf_dir

    @hydra.main(config_path=str(conf_dir()), config_name="train", version_base="1.3")
    def _inspect(cfg: object) -> None:  # never called: each of these flags makes Hydra print and return
        return None

    saved, raising = sys.argv, logging.raiseExceptions
    sys.argv = [saved[0] if saved else "train.py", *argv]
    logging.raiseExceptions = False  # Hydra prints --info through logging: `| head` must not print tracebacks
    try:
        _inspect()
    except SystemExit as exc:  # Hydra reports its own errors and exits 1
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv, logging.raiseExceptions = saved, raising
    return 0


def _multirun(argv: list[str]) -> int:
    """A sweep: every run is composed and validated before any is prepared. A grid's runs are then known: the
    session prepares each into its run dir under run_root/<sweep name>/ and submits them through one submit. A
    search goes through Hydra's multirun: Optuna's sweeper hands each batch of trials to our launcher plugin
    (hydra_plugins/trainer_platform_launcher), which does the same per batch."""
    from trainer_platform.compose import check_hydra_keys
    from trainer_platform.sweep import plan_sweep

    overrides = [a for a in argv if a not in ("-m", "--multirun")]
    check_hydra_keys(overrides)
    session, hydra_overrides = plan_sweep(overrides)
    if session.planned is not None:
        # through Hydra's multirun a grid would cost two more compositions of train.yaml (Hydra's own main) for a
        # sweeper that hands this same list of runs on as one batch
        session.launch(session.planned)
        return _sweep_result(session)
    return _run_hydra_sweep(session, hydra_overrides)


def _run_hydra_sweep(session: Any, hydra_overrides: list[str]) -> int:
    import shutil
    import tempfile

    import hydra
    from omegaconf import DictConfig

    from trainer_platform.paths import conf_dir, local_searchpath, repo_root
    from trainer_platform.sweep.batch import SweepAborted, activate, deactivate

    if str(repo_root()) not in sys.path:
        sys.path.insert(0, str(repo_root()))  # Hydra finds our plugins in the repo's hydra_plugins/

    @hydra.main(config_path=str(conf_dir()), config_name="train", version_base="1.3")
    def _never_called(cfg: DictConfig) -> None:  # our launcher plugin runs the jobs itself
        return None

    saved = sys.argv
    scratch = tempfile.mkdtemp(prefix="tp-hydra-sweep-")  # Hydra's own multirun.yaml goes here, then away
    hydra_args = ["hydra/launcher=trainer_platform", f"hydra.sweep.dir={scratch}", *local_searchpath()]
    sys.argv = [saved[0] if saved else "train.py", "-m", *hydra_overrides, *hydra_args]
    if session.sweeper == "optuna":
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # its study banner; the runs say what happens
    activate(session)
    try:
        _never_called()
    except SweepAborted:
        pass  # the session holds the error, reported below
    finally:
        sys.argv = saved
        deactivate()
        shutil.rmtree(scratch, ignore_errors=True)
    if session.error is not None:
        raise session.error
    return _sweep_result(session)


def _sweep_result(session: Any) -> int:
    """The exit code of a finished sweep, after saying where it is and how many of its runs failed."""
    failures = [code for code in session.codes if code != 0]
    if session.sweep_dir is not None:
        print(f"sweep dir: {session.sweep_dir}", flush=True)
    if failures:
        print(f"{len(failures)} of {len(session.codes)} sweep run(s) failed", file=sys.stderr)
        return 2 if all(code == 2 for code in failures) else failures[0]
    return 0
