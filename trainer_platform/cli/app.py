"""The command-line parser (one sub-command per `cmd_*` module of this package) and the error policy."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from rich.console import Console
from rich.text import Text

from trainer_platform.cli.common import CliError
from trainer_platform.errors import SpecError
from trainer_platform.runs import RunDirError

_PACKAGE = "trainer_platform.cli"
_DESCRIPTION = "Manage runs from their run directory alone, in any process, whatever launcher ran them."


def command_modules() -> list[ModuleType]:
    """The command modules of this package (`cmd_*.py`), in their `ORDER`, then by name."""
    package = importlib.import_module(_PACKAGE)
    names = [m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("cmd_")]
    modules = [importlib.import_module(f"{_PACKAGE}.{name}") for name in names]
    return sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.NAME))


def version_line() -> str:
    """`trainer-platform X (verl Y, Python Z)`, from the installed packages' metadata (nothing imported)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    def of(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return f"trainer-platform {of('trainer-platform')} (verl {of('verl')}, Python {platform.python_version()})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainer-platform", description=_DESCRIPTION)
    parser.add_argument("--version", action="version", version=version_line())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in command_modules():
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(func=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `trainer-platform` console script; returns the exit code."""
    from launchers.base import LaunchError, UnknownLauncherError

    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough = {m.NAME: m for m in command_modules() if getattr(m, "PASSTHROUGH", False)}
    if argv and argv[0] in passthrough:  # its arguments are its own (train.py's flags and overrides), unparsed here
        return int(passthrough[argv[0]].run(argparse.Namespace(overrides=argv[1:]), Console(soft_wrap=False)))
    parser = _parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides += extra  # overrides given after an option (`data inspect F --samples 1 data=gsm8k`)
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as e:  # --help (0) or a usage error (2), already printed by argparse
        return e.code if isinstance(e.code, int) else 2
    out = Console(soft_wrap=False)
    try:
        return int(args.func(args, out))
    except (CliError, RunDirError, SpecError, LaunchError, UnknownLauncherError, OSError) as e:
        Console(stderr=True, soft_wrap=True).print(Text.assemble(("error: ", "bold red"), str(e)))
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
