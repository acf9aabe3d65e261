"""The console: a run shown from its run directory alone, while it runs (`follow_run`) and when it ends
(`summary_text`). Any launcher, `watch` and remote runs reuse it: it never reads a job's stdout."""

from trainer_platform.console.follow import follow_run, show_while
from trainer_platform.console.summary import summary_text

__all__ = ["follow_run", "show_while", "summary_text"]
