"""The HTML of a stats report: one file, inline CSS and SVG, no script and no link to fetch.

A report is mailed, attached to issues and opened offline years later, so it must not need
a network or a JavaScript library to show its charts. Funnel numbers carry `data-*`
attributes so tests (and scripts) read them from the DOM instead of parsing text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from tokenmill.corpus.store.versions import Store
from tokenmill.flows.report.data import (
    Bin,
    Chart,
    FunnelRow,
    Report,
    Section,
    holds,
    report_data,
)

CHART_W, CHART_H, PAD_L, PAD_B, PAD_T = 640, 180, 56, 34, 16
MAX_X_LABELS = 12
# Nothing may load from anywhere: a report that fetched would leak that it was opened, and break offline.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
NOT_MEASURED = '<p class="muted">No domains recorded (sources are not URLs).</p>'

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#1d2330;padding:0 16px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccd}h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px}td,th{border:1px solid #dde;padding:3px 8px;text-align:left;
vertical-align:top}td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f2f4f8}
code{font-size:12px}.reason td{color:#a33;font-size:12px}.muted{color:#667}.cols{display:flex;gap:24px;flex-wrap:wrap}
.bar{background:#4c78a8;height:10px;display:inline-block}svg{display:block;margin:4px 0 14px}
details{margin:8px 0}summary{cursor:pointer;font-weight:600}.diff td:nth-child(n+3){font-family:monospace}
"""

# Reports the pipeline writes, beside the step folders.
REPORTS = "reports"


def num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return escape(str(value))
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}"
    return escape(str(value))


def short(value: float | None) -> str:
    """A compact axis label: 1.5k, 2M, 0.35."""
    if value is None:
        return "−∞"
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], css: str = "") -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f'<td class="n">{num(v)}</td>' if isinstance(v, (int, float)) and not isinstance(v, bool)
                         else f"<td>{num(v)}</td>" for v in row) + "</tr>"
        for row in rows
    )
    return f'<table class="{css}"><tr>{head}</tr>{body}</table>'


def marker_x(bins: Sequence[Bin], value: float) -> float | None:
    """Where `value` falls along the bars, in bar widths (2.5: halfway through the third bar)."""
    for i, b in enumerate(bins):
        if holds(b, value):
            if b.low is None or b.high is None or b.high == b.low:
                return float(i)
            return i + (value - b.low) / (b.high - b.low)
    return None


def chart_svg(chart: Chart) -> str:
    """Bars scaled to the largest count, every bar with a tooltip, markers as dashed red lines."""
    n = max(len(chart.bins), 1)
    plot_w, plot_h = CHART_W - PAD_L - 8, CHART_H - PAD_B - PAD_T
    top = max((b.count for b in chart.bins), default=0) or 1
    width = plot_w / n
    labels = chart.labels or [short(b.low) for b in chart.bins]
    step = max(1, -(-n // MAX_X_LABELS))
    parts = [f'<svg width="{CHART_W}" height="{CHART_H}" role="img" '
             f'aria-label="{escape(chart.title)}">',
             f'<text x="{PAD_L}" y="11" font-size="12" font-weight="600">{escape(chart.title)}</text>',
             f'<line x1="{PAD_L}" y1="{PAD_T + plot_h}" x2="{PAD_L + plot_w}" y2="{PAD_T + plot_h}" stroke="#889"/>',
             f'<text x="{PAD_L - 4}" y="{PAD_T + 8}" font-size="10" text-anchor="end">{num(top)}</text>']
    for i, (b, label) in enumerate(zip(chart.bins, labels)):
        h = plot_h * b.count / top
        x = PAD_L + i * width
        tip = f"{label}{'–' + short(b.high) if chart.labels is None and b.high is not None else ''}: {b.count:,}"
        parts.append(f'<rect x="{x + 1:.1f}" y="{PAD_T + plot_h - h:.1f}" width="{max(width - 2, 1):.1f}" '
                     f'height="{h:.1f}" fill="#4c78a8"><title>{escape(tip)}</title></rect>')
        if i % step == 0:
            parts.append(f'<text x="{x + width / 2:.1f}" y="{PAD_T + plot_h + 13}" font-size="10" '
                         f'text-anchor="middle">{escape(label)}</text>')
    for value, label in chart.markers:
        pos = marker_x(chart.bins, value)
        if pos is None:
            continue
        x = PAD_L + pos * width
        parts.append(f'<line class="threshold" data-value="{value:g}" x1="{x:.1f}" y1="{PAD_T}" x2="{x:.1f}" '
                     f'y2="{PAD_T + plot_h}" stroke="#d62728" stroke-dasharray="4 3"/>'
                     f'<text x="{x + 3:.1f}" y="{PAD_T + plot_h + 28}" font-size="10" fill="#d62728">'
                     f'{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def funnel_svg(rows: Sequence[FunnelRow]) -> str:
    """One bar per step: kept docs in blue, dropped in red, scaled to the largest input."""
    top = max((r.docs_in for r in rows), default=0) or 1
    row_h, label_w, bar_w = 26, 150, 620
    parts = [f'<svg width="{label_w + bar_w + 200}" '
             f'height="{row_h * len(rows) + 8}" role="img" aria-label="funnel">']
    for i, r in enumerate(rows):
        y = 4 + i * row_h
        kept, dropped = bar_w * r.docs_out / top, bar_w * (r.docs_in - r.docs_out) / top
        parts.append(f'<text x="0" y="{y + 15}" font-size="12">{escape(r.step)}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{kept:.1f}" height="18" fill="#4c78a8">'
                     f'<title>{r.docs_out:,} kept</title></rect>'
                     f'<rect x="{label_w + kept:.1f}" y="{y}" width="{dropped:.1f}" height="18" fill="#e45756">'
                     f'<title>{r.docs_in - r.docs_out:,} dropped</title></rect>'
                     f'<text x="{label_w + kept + dropped + 6:.1f}" y="{y + 14}" font-size="11">'
                     f'{r.docs_in:,} → {r.docs_out:,}</text>')
    parts.append("</svg>")
    return "".join(parts)


def funnel_table(rows: Sequence[FunnelRow], side: str) -> str:
    """The funnel's numbers; each step row carries them as `data-*` attributes, reasons follow as rows."""
    out = ['<table class="funnel"><tr><th>step</th><th>version</th><th>docs in</th><th>docs out</th>'
           '<th>dropped</th><th>bytes in</th><th>bytes out</th></tr>']
    for r in rows:
        out.append(
            f'<tr class="funnel-row" data-side="{side}" data-step="{escape(r.step)}" data-version="{escape(r.version)}"'
            f' data-docs-in="{r.docs_in}" data-docs-out="{r.docs_out}" data-bytes-in="{r.bytes_in}"'
            f' data-bytes-out="{r.bytes_out}"><td>{escape(r.step)}</td><td><code>{escape(r.version)}</code></td>'
            f'<td class="n">{r.docs_in:,}</td><td class="n">{r.docs_out:,}</td>'
            f'<td class="n">{r.docs_in - r.docs_out:,}</td><td class="n">{r.bytes_in:,}</td>'
            f'<td class="n">{r.bytes_out:,}</td></tr>')
        for reason, entry in r.rejected.items():
            docs, size = int(entry.get("docs", 0)), int(entry.get("bytes", 0))
            out.append(f'<tr class="reason" data-step="{escape(r.step)}" data-reason="{escape(reason)}" '
                       f'data-docs="{docs}"><td></td><td>{escape(reason)}</td><td></td><td></td>'
                       f'<td class="n">{docs:,}</td><td class="n">{size:,}</td><td></td></tr>')
    out.append("</table>")
    return "".join(out)


def mix_table(title: str, mix: Mapping[str, int]) -> str:
    if not mix:
        return ""
    top = max(mix.values()) or 1
    rows = "".join(f'<tr><td>{escape(k)}</td><td class="n">{v:,}</td>'
                   f'<td><span class="bar" style="width:{200 * v / top:.0f}px"></span></td></tr>'
                   for k, v in mix.items())
    return f"<div><h3>{escape(title)}</h3><table><tr><th>value</th><th>docs</th><th></th></tr>{rows}</table></div>"


def clusters_html(clusters: Sequence[Mapping[str, Any]]) -> str:
    if not clusters:
        return ""
    rows = "".join(
        f'<tr><td><code>{escape(str(c.get("cluster")))}</code></td><td class="n">{num(c.get("size"))}</td>'
        f'<td>{"<br>".join(escape(str(line)[:160]) for line in c.get("first_lines", []))}</td></tr>'
        for c in clusters)
    return ("<h3>largest duplicate clusters</h3><table><tr><th>cluster</th><th>size</th>"
            f"<th>sample first lines</th></tr>{rows}</table>")


def section_html(s: Section) -> str:
    m = s.manifest
    settings = table(["setting", "value"], [[k, json.dumps(v)] for k, v in sorted(s.settings.items())])
    figures = table(["figure", "value"], list(s.figures.items())) if s.figures else ""
    extras = "".join(f"<h3>{escape(name)}</h3>" + table(["key", "value"], [[k, v if isinstance(v, (int, float))
                     else json.dumps(v)] for k, v in values.items()]) for name, values in s.tables.items())
    charts = "".join(chart_svg(c) for c in s.charts)
    return (f'<details class="step" data-step="{escape(m.step)}" {"open" if s.main else ""}>'
            f'<summary>{escape(m.step)} <code>{escape(m.id)}</code></summary>'
            f'<p class="muted">code {escape(m.code_version)} · '
            f'created {escape(m.created.isoformat(timespec="seconds"))}'
            f' · {m.wall_seconds:,.1f} s · inputs: {escape(", ".join(m.inputs) or "none")}</p>'
            f'<div class="cols"><div><h3>settings</h3>{settings}</div><div><h3>figures</h3>{figures}{extras}</div>'
            f"</div>{charts}{clusters_html(s.clusters)}</details>")


def comparison_html(report: Report) -> str:
    if report.vs is None:
        return ""
    diff_rows = [[d["step"], d["setting"], json.dumps(d["values"].get(report.version)),
                  json.dumps(d["values"].get(report.vs))] for d in report.differences]
    diffs = (table(["step", "setting", report.version, report.vs], diff_rows, "diff") if diff_rows
             else "<p>No setting differs.</p>")
    return (f'<h2>Compared with <code>{escape(report.vs)}</code></h2><div class="cols">'
            f'<div><h3>{escape(report.version)}</h3>{funnel_table(report.funnel, "a")}</div>'
            f'<div><h3>{escape(report.vs)}</h3>{funnel_table(report.vs_funnel, "b")}</div></div>'
            f"<h3>settings that differ</h3>{diffs}")


def runs_html(runs: Sequence[Mapping[str, Any]]) -> str:
    if not runs:
        return ""
    keys = [k for k in runs[0] if any(r.get(k) is not None for r in runs)]
    return "<h2>Training runs and evals</h2>" + table(keys, [[r.get(k) for k in keys] for r in runs])


def render(report: Report) -> str:
    lineage = " → ".join(escape(m.id) for m in report.lineage)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>tokenmill report {escape(report.version)}</title><style>{CSS}</style></head><body>"
        f"<h1>tokenmill report <code>{escape(report.version)}</code></h1>"
        f'<p class="muted">lineage: {lineage}</p>'
        f"<h2>Funnel</h2>{funnel_svg(report.funnel)}{funnel_table(report.funnel, 'main')}"
        f"{comparison_html(report)}"
        f'<h2>Data mix</h2><div class="cols">{mix_table("languages", report.langs)}'
        f'{mix_table("top domains", report.domains) or NOT_MEASURED}</div>'
        f"{runs_html(report.runs)}"
        "<h2>Steps</h2>" + "".join(section_html(s) for s in report.sections) + "</body></html>"
    )


def build_report(store: Store, version: str, vs: str | None = None) -> str:
    """One self-contained HTML page for `version` (compared with `vs` when given): the one call the
    CLI and the pipeline flow make."""
    return render(report_data(store, version, vs))


def write_report(store: Store, version: str) -> str:
    """Write the report of `version` to `<store>/reports/<version>.html` (no manifest there: never taken
    for a version) and return its URL: what every run ends with, through a flow or not."""
    path = f"{store.root}/{REPORTS}/{version}.html"
    store.fs.makedirs(f"{store.root}/{REPORTS}", exist_ok=True)
    with store.fs.open(path, "w", encoding="utf-8") as f:
        f.write(build_report(store, version))
    return store.fs.unstrip_protocol(path)
