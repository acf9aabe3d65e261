#!/usr/bin/env python
"""Train with verl from a declarative config: `python train.py algorithm=grpo model=qwen2_5_7b compute=8xh100`.

Composes conf/ with the command-line overrides into a validated run spec, plans it, prepares model and data,
translates it into one verl job, records it in a run directory and hands it to a launcher. `dry_run=true` prints
the exact command instead. `-m` runs a sweep (one run per combination, through Hydra's multirun).
"""

import sys

from trainer_platform.entry import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
