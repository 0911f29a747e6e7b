"""`pgdoctor timeline`'s charts: in the terminal (plotext) and as a self-contained HTML page (plotly, its
JavaScript inlined: no network needed to view it). Both libraries are the optional extra
`pgdoctor[timeline]`, imported only here, and this module only by `pgdoctor timeline`."""

from __future__ import annotations

import html
import re
from typing import Any

from pgdoctor import __version__
from pgdoctor.analyze.timeline import OTHER_APPS, TimelineReport
from pgdoctor.render.document import Table, text_of
from pgdoctor.render.timeline import Clock, apps_of, apps_table, findings_table, slots_table, summary

EXTRA = "pip install 'pgdoctor[timeline]'"
MISSING = f"the chart needs the optional plotting libraries: {EXTRA}"
MAX_MARKED = 20  # findings marked on the HTML chart (all are in its table)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")


class ChartUnavailable(Exception):
    """The optional plotting libraries are not installed."""


def _series(report: TimelineReport) -> tuple[list[str], list[list[int]]]:
    good = [p for p in report.points if p.error is None]
    names = [*report.top_apps, OTHER_APPS]
    columns = list(zip(*(apps_of(p, report.top_apps) for p in good), strict=True)) if good else []
    series = [list(c) for c in columns]
    keep = [i for i, s in enumerate(series) if any(s)]
    return [names[i] for i in keep], [series[i] for i in keep]


def terminal_chart(report: TimelineReport, *, width: int, height: int, color: bool, utc: bool) -> str:
    """Slots in use per application (lines), all sessions and the usable slots, over time."""
    try:
        import plotext as plt
    except ImportError as exc:
        raise ChartUnavailable(MISSING) from exc
    good = [p for p in report.points if p.error is None]
    if len(good) < 2:
        return ""
    clock = Clock(report, utc)
    names, series = _series(report)
    series += [[p.used for p in good], [p.usable for p in good]]
    names += ["all clients", "usable slots"]
    # a braille cell is 2 dots wide: more points than that only cost time (each bucket keeps its peak)
    keep = _buckets(len(good), 2 * width)
    xs = [good[i[0]].t - good[0].t for i in keep]
    plt.clear_figure()
    plt.plotsize(width, height)
    plt.title("slots in use per application")
    for name, ys in zip(names, series, strict=True):
        plt.plot(xs, [max(ys[j] for j in i) for i in keep], label=name[:30], marker="braille")
    ticks = 5 if width >= 80 else 3
    at = [xs[round(k * (len(xs) - 1) / (ticks - 1))] for k in range(ticks)]
    plt.xticks(at, [clock(good[0].t + x) for x in at])
    if not color:
        plt.theme("clear")
    drawn = str(plt.build())
    return drawn if color else _ANSI.sub("", drawn)


def _buckets(n: int, most: int) -> list[range]:
    """Indices 0..n-1 in at most `most` consecutive runs."""
    step = max(1, -(-n // most))
    return [range(i, min(i + step, n)) for i in range(0, n, step)]


def _x(report: TimelineReport, clock: Clock) -> list[str]:
    return [clock.moment(p.t).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] for p in report.points if p.error is None]


def figure(report: TimelineReport, clock: Clock) -> dict[str, Any]:
    """The plotly figure (a plain dict): slots per application stacked against the usable slots above,
    lock waits, idle-in-transaction sessions and PgBouncer's waiting clients below, findings marked."""
    good = [p for p in report.points if p.error is None]
    x = _x(report, clock)
    names, series = _series(report)
    data: list[dict[str, Any]] = [
        {"type": "scatter", "mode": "lines", "x": x, "y": ys, "name": name, "stackgroup": "slots",
         "line": {"width": 0.5, "color": COLORS[i % len(COLORS)]}, "legendgroup": "slots"}
        for i, (name, ys) in enumerate(zip(names, series, strict=True))
    ]  # fmt: skip
    usable = {"color": "#d62728", "dash": "dash", "width": 2}
    data.append({"type": "scatter", "mode": "lines", "x": x, "y": [p.usable for p in good],
                 "name": "usable slots", "line": usable})  # fmt: skip
    lower = [
        ("blocked on a lock", [p.blocked for p in good], "#d62728"),
        ("blocking others", [p.blockers for p in good], "#ff7f0e"),
        ("idle in transaction",
         [p.classes.get("idle_in_transaction", 0) + p.classes.get("idle_in_transaction_aborted", 0)
          for p in good], "#9467bd"),
    ]  # fmt: skip
    if any(p.pgbouncer_waiting is not None for p in good):
        lower.append(("waiting in PgBouncer", [p.pgbouncer_waiting or 0 for p in good], "#17becf"))
    data += [
        {"type": "scatter", "mode": "lines", "x": x, "y": ys, "name": name, "xaxis": "x2", "yaxis": "y2",
         "line": {"color": c, "shape": "hv"}}
        for name, ys, c in lower
    ]  # fmt: skip
    shapes, notes = [], []
    for k, e in enumerate(report.episodes[:MAX_MARKED]):
        at = clock.moment(e.first_t).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        color = {"critical": "#d62728", "warning": "#ff7f0e"}.get(e.severity, "#1f77b4")
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": at, "x1": at, "y0": 0, "y1": 1,
                       "line": {"color": color, "dash": "dot", "width": 1}})  # fmt: skip
        notes.append({"x": at, "xref": "x", "yref": "paper", "y": 1.0 + 0.035 * (k % 3),
                      "yanchor": "bottom", "xanchor": "left", "showarrow": False,
                      "text": html.escape(f"{e.code} [{e.subject}]"[:40]),
                      "font": {"size": 10, "color": color}})  # fmt: skip
    zone = "UTC" if clock.utc else "local time"
    layout = {
        "plot_bgcolor": "#fafafa",
        "height": 760,
        "margin": {"t": 110, "l": 60, "r": 20, "b": 50},
        "hovermode": "x unified",
        "xaxis": {"anchor": "y", "showticklabels": False},
        "yaxis": {"domain": [0.38, 1.0], "title": {"text": "slots in use"}, "rangemode": "tozero"},
        "xaxis2": {"anchor": "y2", "matches": "x", "title": {"text": zone}},
        "yaxis2": {"domain": [0.0, 0.3], "title": {"text": "sessions"}, "rangemode": "tozero"},
        "shapes": shapes,
        "annotations": notes,
        "legend": {"orientation": "v", "x": 1.01, "y": 1.0},
    }
    return {"data": data, "layout": layout}


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.5em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border-bottom: 1px solid #ddd; padding: 2px 8px; text-align: left; white-space: nowrap; }
td.r, th.r { text-align: right; } p.s { margin: 0.2em 0; }
"""


def _table(table: Table) -> str:
    head = "".join(
        f'<th class="{"r" if c.align == "right" else ""}">{html.escape(c.header)}</th>' for c in table.columns
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"r" if col.align == "right" else ""}">{html.escape(text_of(cell))}</td>'
            for col, cell in zip(table.columns, row, strict=True)
        )
        + "</tr>"
        for row in table.rows
    )
    caption = f"<p>{html.escape(table.caption)}</p>" if table.caption else ""
    return f"<h2>{html.escape(table.title)}</h2><table><tr>{head}</tr>{body}</table>{caption}"


def html_page(report: TimelineReport, *, utc: bool) -> str:
    """One HTML file, plotly.js inlined: it opens with no network, to attach to a postmortem."""
    try:
        import plotly.io as pio
    except ImportError as exc:
        raise ChartUnavailable(MISSING) from exc
    clock = Clock(report, utc)
    chart = pio.to_html(
        figure(report, clock),
        include_plotlyjs=True,
        full_html=False,
        validate=False,
        config={"displaylogo": False, "responsive": True},
    )
    lines = "".join(f'<p class="s">{html.escape(line)}</p>' for line in summary(report, clock))
    tables = "".join(
        _table(t)
        for t in (findings_table(report, clock), slots_table(report, clock), apps_table(report, clock))
    )
    title = f"pgdoctor timeline: {report.recording.header.server.address}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{lines}{chart}{tables}"
        f"<p>made by pgdoctor {html.escape(__version__)}</p></body></html>\n"
    )
