"""`pgdoctor timeline`: the story of a recording as tables (table/plain/markdown/csv) and its JSON contract.
The charts (terminal, HTML) are in `render/timeline_chart.py`, which needs the optional plotting libraries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pgdoctor.analyze.format import duration
from pgdoctor.analyze.timeline import OTHER_APPS, Point, TimelineReport
from pgdoctor.render.document import Column, Document, Section, Table, Text

# The classes the table shows as columns, in this order (the rest are counted in `used`).
CLASS_COLUMNS = (
    ("active", ("active",)),
    ("idle", ("idle",)),
    ("idle in xact", ("idle_in_transaction", "idle_in_transaction_aborted")),
    ("blocked", ("blocked",)),
)


class Clock:
    """Times as the timeline writes them: local time (or UTC), with the date only when the recording
    spans more than one day."""

    def __init__(self, report: TimelineReport, utc: bool) -> None:
        self.utc = utc
        first = report.points[0].t if report.points else report.recording.header.started
        last = report.points[-1].t if report.points else first
        self.with_date = self.moment(first).date() != self.moment(last).date()
        self.tenths = report.recording.header.every_s < 1  # ticks closer than a second apart

    def moment(self, t: float) -> datetime:
        return datetime.fromtimestamp(t, UTC) if self.utc else datetime.fromtimestamp(t).astimezone()

    def __call__(self, t: float | None) -> str:
        if t is None:
            return ""
        text = self.moment(t).strftime("%m-%d %H:%M:%S.%f" if self.with_date else "%H:%M:%S.%f")
        return text[:-5] if self.tenths else text[:-7]

    def full(self, t: float) -> str:
        return self.moment(t).strftime("%Y-%m-%d %H:%M:%S %Z")


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def apps_of(p: Point, top: list[str]) -> list[int]:
    other = sum(n for app, n in p.apps.items() if app not in top)
    return [p.apps.get(app, 0) for app in top] + [other]


def summary(report: TimelineReport, clock: Clock) -> list[str]:
    h = report.recording.header
    s = h.server
    lines = [
        f"PostgreSQL {s.version} at {s.address} (database {s.database}, as {s.current_user})"
        + (f", {h.pgbouncer}" if h.pgbouncer else ""),
    ]
    if not report.points:
        lines.append(f"no tick recorded (started {clock.full(h.started)})")
    else:
        first, last = report.points[0], report.points[-1]
        lines.append(
            f"{len(report.points)} ticks from {clock.full(first.t)} to {clock(last.t)} "
            f"({duration(last.t - first.t)}), every {duration(h.every_s)}"
            + (f"; resumed {len(report.recording.resumed)} time(s)" if report.recording.resumed else "")
        )
    if report.peak is not None:
        p = report.points[report.peak]
        holders = ", ".join(
            f"{app} {n}" for app, n in sorted(p.apps.items(), key=lambda a: (-a[1], a[0]))[:5]
        )
        lines.append(
            f"peak: {p.used}/{p.usable} slots ({p.usage_pct:g}%) at {clock(p.t)}"
            + (f": {holders}" if holders else "")
        )
    lines += [f"note: {n}" for n in report.notes]
    return lines


def slots_table(report: TimelineReport, clock: Clock) -> Table:
    pools = any(p.pgbouncer_waiting is not None for p in report.points)
    columns = [Column("time"), Column("used/usable", "right"), Column("%", "right")]
    columns += [Column(app, "right") for app in report.top_apps] + [Column(OTHER_APPS, "right")]
    columns += [Column(name, "right") for name, _ in CLASS_COLUMNS]
    columns += [Column("blockers", "right"), Column("oldest idle in xact", "right")]
    if pools:
        columns += [Column("pgbouncer waiting", "right"), Column("maxwait", "right")]
    columns.append(Column("events"))
    rows: list[list[Any]] = []
    for i in report.shown:
        p = report.points[i]
        if p.error:
            rows.append([clock(p.t), "", "", *[""] * (len(columns) - 4), "; ".join(p.events)])
            continue
        row: list[Any] = [
            clock(p.t),
            f"{p.used}/{p.usable}",
            f"{p.usage_pct:g}",
            *apps_of(p, report.top_apps),
        ]
        row += [sum(p.classes.get(c, 0) for c in classes) for _, classes in CLASS_COLUMNS]
        row += [p.blockers, duration(p.oldest_idle_in_transaction_s)]
        if pools:
            row += [
                "" if p.pgbouncer_waiting is None else p.pgbouncer_waiting,
                duration(p.pgbouncer_maxwait_s) if p.pgbouncer_waiting else "",
            ]
        row.append("; ".join((["PEAK"] if i == report.peak else []) + p.events))
        rows.append(row)
    shown = len(report.shown)
    caption = (
        f"{shown} of {len(report.points)} ticks: the busiest of each stretch, and every tick where a finding "
        "appeared or cleared (--rows 0: every tick)"
        if shown < len(report.points)
        else ""
    )
    return Table("Slots in use over time", columns, rows, caption)


def apps_table(report: TimelineReport, clock: Clock) -> Table:
    return Table(
        "Per application and class",
        [Column("application"), Column("class"), Column("at start", "right"), Column("peak", "right"),
         Column("peak at"), Column("at end", "right")],
        [[a.application, a.cls, a.first, a.peak, clock(a.peak_t), a.last] for a in report.app_classes],
    )  # fmt: skip


def findings_table(report: TimelineReport, clock: Clock) -> Table:
    return Table(
        "Findings over time",
        [Column("first seen"), Column("cleared"), Column("severity"), Column("code"), Column("subject"),
         Column("ticks", "right"), Column("message when first seen")],
        [
            [clock(e.first_t), clock(e.cleared_t) if e.cleared_t is not None else "(still at end)",
             e.severity, e.code, e.subject, e.ticks, e.message]
            for e in report.episodes
        ],
    )  # fmt: skip


def document(report: TimelineReport, *, utc: bool = False) -> Document:
    clock = Clock(report, utc)
    sections: list[Section] = [
        Text(summary(report, clock)),
        slots_table(report, clock),
        findings_table(report, clock),
        apps_table(report, clock),
    ]
    return Document("pgdoctor timeline", sections, show_findings=False, primary=1)


def to_json(report: TimelineReport) -> dict[str, Any]:
    """The documented JSON contract (README, `pgdoctor timeline`: JSON)."""
    h = report.recording.header
    return {
        "command": "timeline",
        "recording_version": h.version,
        "pgdoctor": h.pgdoctor,
        "server": {
            "version": h.server.version,
            "version_num": h.server.version_num,
            "system_identifier": h.server.system_identifier,
            "address": h.server.address,
            "database": h.server.database,
            "current_user": h.server.current_user,
        },
        "pgbouncer": h.pgbouncer,
        "every_s": h.every_s,
        "started": iso(h.started),
        "resumed": [iso(r.started) for r in report.recording.resumed],
        "thresholds": h.thresholds,
        "ticks": len(report.points),
        "notes": report.notes,
        "peak": None if report.peak is None else _point(report.points[report.peak]),
        "points": [_point(p) for p in report.points],
        "applications": [
            {
                "application": a.application,
                "class": a.cls,
                "first": a.first,
                "peak": a.peak,
                "peak_at": iso(a.peak_t),
                "last": a.last,
            }
            for a in report.app_classes
        ],
        "episodes": [
            {
                "code": e.code,
                "subject": e.subject,
                "severity": e.severity,
                "first_seen": iso(e.first_t),
                "cleared": iso(e.cleared_t),
                "ticks": e.ticks,
                "message": e.message,
            }
            for e in report.episodes
        ],
        "findings": [f.to_json() for f in report.findings],
    }


def _point(p: Point) -> dict[str, Any]:
    return {
        "time": iso(p.t),
        "t": p.t,
        "used": p.used,
        "usable": p.usable,
        "usage_pct": p.usage_pct,
        "applications": p.apps,
        "classes": p.classes,
        "blocked": p.blocked,
        "blockers": p.blockers,
        "oldest_idle_in_transaction_s": p.oldest_idle_in_transaction_s,
        "oldest_xact_s": p.oldest_xact_s,
        "pgbouncer_waiting": p.pgbouncer_waiting,
        "pgbouncer_maxwait_s": p.pgbouncer_maxwait_s,
        "events": p.events,
        "error": p.error,
    }
