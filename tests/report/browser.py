"""Debian's real headless Chromium (installed by .ci/run) opening a local HTML file: the DOM after its scripts ran,
a screenshot, and every console message it printed."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--enable-logging=stderr", "--v=0", "--hide-scrollbars",
    "--force-device-scale-factor=1",
)  # fmt: skip


@dataclass(frozen=True)
class PageLoad:
    # the DOM serialised after the page's scripts ran
    dom: str
    # console messages (chromium's `INFO:CONSOLE` log lines)
    console: list[str]
    # the screenshot PNG
    screenshot: Path


def chromium() -> str:
    path = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if path is None:
        raise RuntimeError("chromium is not installed: .ci/run installs it (apt-get install chromium)")
    return path


def _run(args: list[str], url: str, timeout: float) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *args, url],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def load(page: Path, out_png: Path, *, fragment: str = "", width: int = 1280, height: int = 2400,
         budget_ms: int = 20000, timeout: float = 180) -> PageLoad:  # fmt: skip
    """Open `page` in a fresh profile, let its scripts run (`budget_ms` of virtual time), then dump the DOM and take
    a `width`x`height` screenshot of the same layout."""
    args = [f"--virtual-time-budget={budget_ms}", f"--window-size={width},{height}", f"--screenshot={out_png}"]
    res = _run([*args, "--dump-dom"], page.absolute().as_uri() + fragment, timeout)
    console = [line for line in res.stderr.splitlines() if ":CONSOLE" in line]
    if res.returncode != 0 or not out_png.is_file():
        raise RuntimeError(f"chromium failed ({res.returncode}):\n{res.stderr[-2000:]}")
    return PageLoad(dom=res.stdout, console=console, screenshot=out_png)
