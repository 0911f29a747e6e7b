"""Draw a ConnectionsReport: capacity, groups, sessions, findings; and its JSON contract."""

from __future__ import annotations

from typing import Any

from pgdoctor.analyze.connections import CLASSES, ConnectionsReport, Session
from pgdoctor.analyze.format import duration
from pgdoctor.render.common import count, round_s, shorten
from pgdoctor.render.document import Cell, Column, Document, Node, Styled, Table, Text, Trees

CLASS_STYLE = {
    "active": "green",
    "idle": "blue",
    "idle_in_transaction": "bold yellow",
    "idle_in_transaction_aborted": "bold red",
    "blocked": "bold red",
    "other": "magenta",
}
CLASS_HEADER = {
    "active": "active",
    "idle": "idle",
    "idle_in_transaction": "idle in xact",
    "idle_in_transaction_aborted": "aborted",
    "blocked": "blocked",
    "other": "other",
}
GROUP_HEADER = {"application": "application", "user": "user", "database": "database", "client": "client"}


def capacity_line(report: ConnectionsReport) -> Text:
    cap = report.capacity
    reserved = f"superuser_reserved_connections {cap.superuser_reserved_connections}"
    if report.server.major >= 16:
        reserved += f", reserved_connections {cap.reserved_connections}"
    style = "bold red" if cap.slots_left == 0 else ("yellow" if cap.usage_pct >= 80 else "green")
    return Text(
        [
            f"Capacity: {cap.clients} of {cap.usable} usable slots in use ({cap.usage_pct:g}%), "
            f"{cap.slots_left} left  [max_connections {cap.max_connections} minus {reserved}]"
        ],
        style=style,
    )


def groups_table(report: ConnectionsReport) -> Table:
    columns = [Column(GROUP_HEADER[report.by]), Column("total", "right")]
    columns += [Column(CLASS_HEADER[c], "right") for c in CLASSES]
    columns += [Column("oldest idle in xact", "right"), Column("oldest xact", "right")]
    rows: list[list[Cell]] = []
    for g in report.groups:
        counts = [count(g.counts[c], CLASS_STYLE[c]) for c in CLASSES]
        rows.append(
            [g.key, g.total, *counts, duration(g.oldest_idle_in_transaction_s), duration(g.oldest_xact_s)]
        )
    return Table(f"Client sessions by {report.by}", columns, rows)


def sessions_table(sessions: list[Session], full: bool) -> Table:
    columns = [
        Column("pid", "right"),
        Column("application"),
        Column("user"),
        Column("database"),
        Column("client"),
        Column("class"),
        Column("in state", "right"),
        Column("xact age", "right"),
        Column("blocked by"),
        Column("query"),
    ]
    rows: list[list[Any]] = [
        [
            s.pid,
            s.application_name,
            s.usename,
            s.datname,
            s.client,
            Styled(s.cls, CLASS_STYLE.get(s.cls, "")),
            duration(s.state_age_s),
            duration(s.xact_age_s),
            ",".join(map(str, s.blocked_by)),
            shorten(s.query, 0 if full else 60),
        ]
        for s in sessions
    ]
    return Table("Sessions", columns, rows)


def background_section(report: ConnectionsReport) -> Trees:
    kinds: dict[str, list[int]] = {}
    for s in report.background:
        kinds.setdefault(s.backend_type or "(unknown)", []).append(s.pid)
    roots = [Node(f"{kind}: {len(pids)}") for kind, pids in sorted(kinds.items())]
    return Trees("Other backends (not counted as clients)", roots)


def document(report: ConnectionsReport, *, show_sessions: bool = False, full: bool = False) -> Document:
    title = f"pgdoctor connections: PostgreSQL {report.server.version}"
    sections: list[Any] = [capacity_line(report), groups_table(report)]
    primary = 1
    if show_sessions:
        sections.append(sessions_table(report.sessions, full))
        primary = 2
    sections.append(background_section(report))
    return Document(title, sections, report.findings, primary=primary)


def session_json(s: Session) -> dict[str, Any]:
    return {
        "pid": s.pid,
        "application_name": s.application_name,
        "usename": s.usename,
        "datname": s.datname,
        "client": s.client,
        "class": s.cls,
        "state": s.state,
        "wait_event": s.wait,
        "state_age_s": round_s(s.state_age_s),
        "xact_age_s": round_s(s.xact_age_s),
        "query_age_s": round_s(s.query_age_s),
        "xmin_age": s.xmin_age,
        "blocked_by": list(s.blocked_by),
        "query": s.query,
    }


def to_json(report: ConnectionsReport) -> dict[str, Any]:
    cap = report.capacity
    return {
        "command": "connections",
        "server": {"version": report.server.version, "version_num": report.server.version_num},
        "group_by": report.by,
        "capacity": {
            "max_connections": cap.max_connections,
            "superuser_reserved_connections": cap.superuser_reserved_connections,
            "reserved_connections": cap.reserved_connections,
            "usable": cap.usable,
            "clients": cap.clients,
            "usage_pct": cap.usage_pct,
            "slots_left": cap.slots_left,
        },
        "groups": [
            {
                "key": g.key,
                "total": g.total,
                **{c: g.counts[c] for c in CLASSES},
                "oldest_idle_in_transaction_s": round_s(g.oldest_idle_in_transaction_s),
                "oldest_xact_s": round_s(g.oldest_xact_s),
            }
            for g in report.groups
        ],
        "sessions": [session_json(s) for s in report.sessions],
        "background": [
            {"pid": s.pid, "backend_type": s.backend_type, "state": s.state} for s in report.background
        ],
        "findings": [f.to_json() for f in report.findings],
    }
