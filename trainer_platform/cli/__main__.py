"""`python -m trainer_platform.cli …` runs the `trainer-platform` command."""

import sys

from trainer_platform.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
