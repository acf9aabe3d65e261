"""`trainer-platform …`: manage runs from their run directory alone, in any process, whatever launcher ran them.

Each command lives in its own module `cmd_<name>.py` in this package (found at start-up, listed in the order of
their `ORDER`): a module defines `NAME`, `HELP`, `ORDER`, `add_arguments(parser)` and `run(args, out) -> int`.
Adding a command is adding a module; nothing else changes.
"""

from trainer_platform.cli.app import main
from trainer_platform.cli.common import CliError

__all__ = ["CliError", "main"]
