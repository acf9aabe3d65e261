"""The report as one self-contained HTML file: plotly.js inlined from the installed `plotly` package (nothing is
fetched when it opens: a Content-Security-Policy forbids any network load), the figures as embedded JSON, tables
as plain HTML, and a PNG button per plot (plotly's own image export)."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from importlib import resources
from typing import Any

# nothing but the page's own inline scripts and styles, and the data/blob URLs plotly's PNG export uses
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; "
    "font-src data:; connect-src 'none'"
)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #1f2430; background: #ffffff; }
h1 { font-size: 22px; margin: 0 0 4px 0; } h2 { font-size: 17px; margin: 28px 0 8px 0; }
.sub { color: #5b6475; margin-bottom: 16px; }
table { border-collapse: collapse; font-size: 13px; margin-bottom: 8px; }
th, td { border-bottom: 1px solid #dde1ea; padding: 4px 10px; text-align: left; white-space: nowrap; }
th { background: #f4f6fa; } tr.best td { font-weight: bold; background: #eaf7ef; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 16px; }
.card { border: 1px solid #dde1ea; border-radius: 6px; padding: 6px; }
.card button { font-size: 12px; margin: 2px 4px; }
#errors { color: #b00020; white-space: pre-wrap; }
"""

# Draw every figure; record how many rendered (data-rendered on <body>) and any error (#errors). With #selftest in
# the URL, also export each plot as PNG and record the image sizes (data-png on <body>): the browser test's hooks.
_SCRIPT = """
(function () {
  var errors = document.getElementById('errors');
  function fail(msg) { errors.textContent += msg + '\\n'; document.body.dataset.errors = 'yes'; }
  window.addEventListener('error', function (e) { fail('error: ' + e.message); });
  var figures = JSON.parse(document.getElementById('report-data').textContent);
  var config = {responsive: true, displaylogo: false, toImageButtonOptions: {format: 'png', scale: 2}};
  var drawn = figures.map(function (fig, i) {
    var div = document.getElementById('plot-' + i);
    return Plotly.newPlot(div, fig.data, fig.layout, config).then(function () {
      var r = div.getBoundingClientRect();
      div.dataset.rect = [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height].map(Math.round).join(',');
      return div;
    });
  });
  document.querySelectorAll('button[data-png]').forEach(function (b) {
    b.addEventListener('click', function () {
      var div = document.getElementById(b.dataset.png);
      Plotly.downloadImage(div, {format: 'png', filename: b.dataset.name, scale: 2});
    });
  });
  Promise.all(drawn).then(function (divs) {
    document.body.dataset.rendered = String(divs.length);
    if (location.hash !== '#selftest') { return; }
    var images = divs.map(function (div) { return Plotly.toImage(div, {format: 'png'}); });
    return Promise.all(images).then(function (urls) {
      var png = 'data:image/png;base64,';
      document.body.dataset.png = urls.map(function (u) { return u.startsWith(png) ? u.length : 0; }).join(',');
    });
  }).catch(function (e) { fail('plot error: ' + e); });
})();
"""


def plotly_js() -> str:
    """plotly.min.js as shipped inside the installed `plotly` Python package."""
    try:
        text = (resources.files("plotly") / "package_data" / "plotly.min.js").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise RuntimeError(
            "the report needs plotly.js from the `plotly` package; install it: .venv/bin/pip install plotly"
        ) from e
    return text.replace("</script", "<\\/script")


def _json_script(data: Any) -> str:
    return json.dumps(data, allow_nan=False, separators=(",", ":")).replace("</", "<\\/")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], highlight: int | None = None) -> str:
    """An HTML table of text cells (escaped); row `highlight` is marked best."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    best = ' class="best"'
    body = "".join(
        f"<tr{best if i == highlight else ''}>"
        + "".join(f"<td>{html.escape('-' if c is None else str(c))}</td>" for c in row)
        + "</tr>"
        for i, row in enumerate(rows)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(
    title: str,
    subtitle: str,
    sections: Sequence[tuple[str, str]],
    figures: Sequence[dict[str, Any]],
    appendix: Sequence[tuple[str, str]] = (),
) -> str:
    """The whole page: `sections` are (heading, HTML) blocks shown above the plots, `appendix` ones below."""
    cards = "".join(
        f'<div class="card"><div id="plot-{i}" class="plot"></div>'
        f'<button data-png="plot-{i}" data-name="{html.escape(_file_name(fig["title"]))}">PNG</button></div>'
        for i, fig in enumerate(figures)
    )
    blocks = "".join(f"<h2>{html.escape(h)}</h2>{body}" for h, body in sections)
    tail = "".join(f"<h2>{html.escape(h)}</h2>{body}" for h, body in appendix)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
        f"<script>{plotly_js()}</script></head><body>"
        f'<h1>{html.escape(title)}</h1><div class="sub">{html.escape(subtitle)}</div><div id="errors"></div>'
        f'{blocks}<h2>Plots</h2><div class="grid">{cards}</div>{tail}'
        f'<script type="application/json" id="report-data">{_json_script(list(figures))}</script>'
        f"<script>{_SCRIPT}</script></body></html>\n"
    )


def _file_name(title: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in title).strip("_").lower() or "plot"
