"""`pgdoctor timeline FILE`: a recording (`pgdoctor record`) told as the story of the incident."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pgdoctor.errors import ExitCode, PgDoctorError
from pgdoctor.options import FailOn, FailOnOpt, FormatOpt, emit_report, exit_code
from pgdoctor.render.formats import Format

if TYPE_CHECKING:
    from pgdoctor.analyze.timeline import TimelineReport

ROWS_DEFAULT = 40  # analyze.timeline.DEFAULT_ROWS (not imported here: the command line loads fast)
CHART_HEIGHT = 22


def timeline(
    file: Annotated[Path, typer.Argument(help="A recording made by `pgdoctor record`.", show_default=False)],
    fmt: FormatOpt = Format.AUTO,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            metavar="FILE",
            help="Also write the chart and the tables as one self-contained HTML file (no network needed "
            "to open it). Needs the chart extra: pip install 'pgdoctor[timeline]'.",
        ),
    ] = None,
    rows: Annotated[
        int,
        typer.Option(
            "--rows",
            help="At most about this many rows in the table (the busiest tick of each stretch of time, "
            "plus every tick where a finding appeared or cleared); 0: every tick.",
        ),
    ] = ROWS_DEFAULT,
    utc: Annotated[
        bool, typer.Option("--utc", help="Times in UTC (default: this machine's local time).")
    ] = False,
    chart: Annotated[
        bool, typer.Option("--chart/--no-chart", help="Draw the chart in the terminal (table and plain).")
    ] = True,
    fail_on: FailOnOpt = FailOn.NEVER,
) -> None:
    """The story of a recording: slots in use over time per application and class, lock waits and
    PgBouncer's waiting clients, when each finding appeared and cleared, the peak; a chart in the
    terminal and, with --html, a self-contained HTML page."""
    from pgdoctor.analyze.timeline import analyze_timeline
    from pgdoctor.render import timeline as render
    from pgdoctor.render.document import resolve_format
    from pgdoctor.snapshot.recording import read_recording

    report = analyze_timeline(read_recording(file), rows=rows)
    if html is not None:
        _write_html(report, html, utc)
    shown = resolve_format(fmt)
    if chart and shown in (Format.TABLE, Format.PLAIN):
        _chart(report, color=shown is Format.TABLE and "NO_COLOR" not in os.environ, utc=utc)
    emit_report(fmt, lambda: render.to_json(report), lambda: render.document(report, utc=utc))
    raise typer.Exit(exit_code(report.findings, fail_on))


def _chart(report: TimelineReport, *, color: bool, utc: bool) -> None:
    import shutil

    from pgdoctor.render.timeline_chart import ChartUnavailable, terminal_chart

    width = min(shutil.get_terminal_size((100, 24)).columns, 140)
    try:
        drawn = terminal_chart(report, width=width, height=CHART_HEIGHT, color=color, utc=utc)
    except ChartUnavailable as exc:
        print(f"note: {exc}", file=sys.stderr)
        return
    if drawn:
        sys.stdout.write(drawn + "\n\n")


def _write_html(report: TimelineReport, path: Path, utc: bool) -> None:
    from pgdoctor.render.timeline_chart import ChartUnavailable, html_page

    try:
        page = html_page(report, utc=utc)
    except ChartUnavailable as exc:
        raise PgDoctorError(f"--html: {exc}", ExitCode.UNAVAILABLE) from None
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise PgDoctorError(f"cannot write --html {path}: {exc.strerror}", ExitCode.USAGE) from None
    print(f"wrote {path}", file=sys.stderr)
