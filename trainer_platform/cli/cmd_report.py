"""`trainer-platform report RUN|SWEEP [-o FILE]`: one self-contained HTML file (opens offline) with interactive
plots of the metric curves, a PNG button per plot, and for a sweep each parameter against the metric and the
ranking. Written next to the run (RUN/report.html) or into the sweep folder (SWEEP/report.html) by default."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.text import Text

from trainer_platform.cli.common import CliError
from trainer_platform.runs import atomic_write

NAME = "report"
HELP = "self-contained HTML report (offline, interactive plots, PNG export) of a run or a sweep folder"
ORDER = 16
REPORT_FILE = "report.html"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="RUN|SWEEP", help="a run dir, or a folder of run dirs (a sweep)")
    parser.add_argument("-o", "--output", help=f"where to write the HTML (default: TARGET/{REPORT_FILE})")


def run(args: argparse.Namespace, out: Console) -> int:
    from trainer_platform.report.build import ReportError, build_report

    target = Path(args.target).expanduser().absolute()
    if not target.is_dir():
        raise CliError(f"{target}: no such directory; pass a run dir or a folder of run dirs (a sweep)")
    output = Path(args.output).expanduser().absolute() if args.output else target / REPORT_FILE
    if output.is_dir():
        raise CliError(f"-o {output} is a directory; pass a file name such as {output / REPORT_FILE}")
    if not output.parent.is_dir():
        raise CliError(f"-o {output}: folder {output.parent} does not exist; create it or pick another path")
    try:
        page, kind = build_report(target)
    except (ReportError, RuntimeError) as e:
        raise CliError(str(e)) from None
    atomic_write(output, page)
    out.print(Text(f"{kind} report: {output} ({len(page) / 1e6:.1f} MB, opens offline)"))
    return 0
