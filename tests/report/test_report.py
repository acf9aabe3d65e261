"""`trainer-platform report RUN|SWEEP`: the figures each algorithm gets from real recorded metrics, sweeps with and
without a manifest, the page's offline guarantees, and the page opened in a real headless Chromium: every plot
rendered (pixels in each plot area), PNG export working, no console message, and a broken page caught."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from browser import PageLoad, load
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runs"))
from synthetic_runs import recorded_run, write_run  # noqa: E402

from trainer_platform.cli import main  # noqa: E402
from trainer_platform.report.build import build_report  # noqa: E402
from trainer_platform.report.figures import _COLOURS  # noqa: E402

PLOT_BG = (0xF4, 0xF6, 0xFA)


def figures_of(page: str) -> list[dict]:
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert match is not None
    return json.loads(match.group(1).replace("<\\/", "</"))


def titles(page: str) -> list[str]:
    return [f["title"] for f in figures_of(page)]


def make_sweep(root: Path, manifest: bool) -> Path:
    """A 2x2 sweep (lr x seed) of synthetic GRPO runs; with `manifest`, a sweep.json naming only lr as the axis."""
    folder = root / "lr-sweep"
    runs = []
    for i, lr in enumerate((1e-5, 1e-4)):
        for seed in (0, 1):
            name = f"lr={lr},seed={seed}"
            write_run(folder, name, spec_values={"algorithm.lr": lr, "train.seed": seed}, seed=seed + 10 * i,
                      created=f"2026-12-01T1{i}:0{seed}:00+00:00")  # fmt: skip
            runs.append({"name": name, "values": {"algorithm.lr": lr}, "overrides": [f"algorithm.lr={lr}"]})
    if manifest:
        data = {"name": "lr-sweep", "created": "2026-12-01T10:00:00+00:00", "axes": {"algorithm.lr": [1e-5, 1e-4]},
                "runs": runs}  # fmt: skip
        (folder / "sweep.json").write_text(json.dumps(data))
    return folder


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("grpo", ["Loss", "Reward / score", "KL", "Entropy", "Response length (tokens)", "Gradient norm",
                  "Learning rate", "Throughput (tokens/s)", "Step time (s)", "Rollout vs actor probabilities"]),
        ("sft", ["Loss", "Gradient norm", "Learning rate"]),
        ("dpo", ["Loss", "Preference accuracy and margin (DPO)", "Gradient norm", "Learning rate"]),
    ],
)  # fmt: skip
def test_run_report_plots_what_verl_logged(tmp_path: Path, kind: str, expected: list[str]) -> None:
    page, what = build_report(recorded_run(tmp_path, kind))
    assert what == "run" and titles(page) == expected
    loss = figures_of(page)[0]["data"]
    names = {t["name"] for t in loss}
    assert names >= ({"actor/pg_loss"} if kind == "grpo" else {"train/loss", "val/loss"})
    reward = [f for f in figures_of(page) if f["title"] == "Reward / score"]
    if reward:  # critic/score/mean is the same curve under another name: one of the two
        assert [t["name"] for t in reward[0]["data"]] == ["critic/rewards/mean"]


def test_page_is_self_contained(tmp_path: Path) -> None:
    page, _ = build_report(recorded_run(tmp_path, "sft"))
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)  # nothing loaded from anywhere
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "Plotly.newPlot" in page and len(page) > 1_000_000  # plotly.js inlined
    assert page.index("<h2>Plots</h2>") < page.index("<h2>Final values</h2>")  # the long table after the plots


def test_sweep_without_manifest_uses_spec_keys_that_differ(tmp_path: Path) -> None:
    page, what = build_report(make_sweep(tmp_path, manifest=False))
    assert what == "sweep"
    assert titles(page)[:2] == ["algorithm.lr → final reward (max)", "train.seed → final reward (max)"]
    ranking = page.split("Ranking by final reward (max)")[1].split("</table>")[0]
    order = re.findall(r"<td>(lr=[^<]+)</td>", ranking)
    finals = {}
    for name in order:
        lines = (tmp_path / "lr-sweep" / name / "metrics.jsonl").read_text().splitlines()
        finals[name] = json.loads(lines[-1])["data"]["critic/rewards/mean"]
    assert order == sorted(finals, key=lambda n: -finals[n]) and len(order) == 4
    assert 'class="best"' in ranking
    lr_plot = figures_of(page)[0]
    assert sorted(lr_plot["data"][0]["x"]) == [1e-5, 1e-5, 1e-4, 1e-4]  # numeric axis


def test_sweep_with_manifest_takes_its_axes(tmp_path: Path) -> None:
    page, _ = build_report(make_sweep(tmp_path, manifest=True))
    assert titles(page)[0].startswith("algorithm.lr → ") and not any(t.startswith("train.seed") for t in titles(page))
    assert "from " + str(tmp_path / "lr-sweep" / "sweep.json") in page


def test_report_cli_writes_file_and_refuses_bad_targets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = recorded_run(tmp_path, "dpo")
    assert main(["report", str(run)]) == 0
    assert (run / "report.html").is_file() and "run report:" in capsys.readouterr().out
    assert main(["report", str(run), "-o", str(tmp_path / "x" / "r.html")]) == 2
    assert "does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty)]) == 2
    assert "holds no run dirs" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert not (empty / "report.html").exists()


# ---- in a real browser --------------------------------------------------------------------------------------------


def plot_rects(dom: str) -> list[tuple[int, int, int, int]]:
    found = re.findall(r'id="plot-\d+"[^>]*data-rect="(\d+),(\d+),(\d+),(\d+)"', dom)
    found += re.findall(r'data-rect="(\d+),(\d+),(\d+),(\d+)"[^>]*id="plot-\d+"', dom)
    return [tuple(int(v) for v in rect) for rect in found]  # type: ignore[misc]


def check_rendered(load_result: PageLoad, expected_plots: int) -> None:
    """Every plot drawn by plotly, each PNG export a real image, no console message, and in the screenshot each
    plot area holds drawing (not the blank background) including trace colours."""
    dom = load_result.dom
    assert load_result.console == [], load_result.console
    assert f'data-rendered="{expected_plots}"' in dom, dom[-3000:]
    assert 'data-errors="yes"' not in dom
    png_sizes = re.search(r'data-png="([\d,]+)"', dom)
    assert png_sizes is not None and all(int(n) > 5000 for n in png_sizes.group(1).split(","))
    assert len(png_sizes.group(1).split(",")) == expected_plots
    rects = plot_rects(dom)
    assert len(rects) == expected_plots
    image = np.asarray(Image.open(load_result.screenshot).convert("RGB"), dtype=np.int32)
    colours = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in _COLOURS], dtype=np.int32)
    checked = 0
    for x, y, w, h in rects:
        if y + h > image.shape[0]:
            continue  # below the screenshot
        area = image[y : y + h, x : x + w].reshape(-1, 3)
        white = (area == 255).all(axis=1)
        background = np.abs(area - np.array(PLOT_BG)).sum(axis=1) <= 6
        drawn = int((~white & ~background).sum())
        distance = np.abs(area[:, None, :] - colours[None, :, :]).sum(axis=2)
        traced = int((distance.min(axis=1) <= 40).sum())
        assert drawn > 0.02 * len(area) and traced > 150, (x, y, w, h, drawn, traced)
        checked += 1
    assert checked >= min(expected_plots, 4)


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reports")
    sweep = make_sweep(root, manifest=False)
    run = recorded_run(root, "grpo")
    assert main(["report", str(sweep)]) == 0 and main(["report", str(run)]) == 0
    return {"sweep": sweep / "report.html", "run": run / "report.html"}


@pytest.mark.parametrize(("which", "plots", "height"), [("run", 10, 2600), ("sweep", 11, 3400)])
def test_report_renders_in_headless_chromium(
    reports: dict[str, Path], tmp_path: Path, which: str, plots: int, height: int
) -> None:
    assert len(figures_of(reports[which].read_text())) == plots
    result = load(reports[which], tmp_path / f"{which}.png", fragment="#selftest", height=height)
    check_rendered(result, plots)


def test_browser_check_catches_a_broken_page(reports: dict[str, Path], tmp_path: Path) -> None:
    """The same check on the run report with a typo in the drawing call: it must fail (console error, no plots)."""
    broken = tmp_path / "broken.html"
    broken.write_text(reports["run"].read_text().replace("Plotly.newPlot(div", "Plotly.newPlott(div"))
    result = load(broken, tmp_path / "broken.png", fragment="#selftest", height=1200)
    assert any("newPlott" in line for line in result.console)
    with pytest.raises(AssertionError):
        check_rendered(result, 10)
