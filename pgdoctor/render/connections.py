"""Draw a ConnectionsReport: capacity, groups, sessions, findings; and its JSON contract."""

from __future__ import annotations

from typing import Any

from pgdoctor.analyze.connections import CLASSES, ConnectionsReport, Session
from pgdoctor.analyze.format import duration
from pgdoctor.render.common import count, pooler_note, round_s, server_json, shorten
from pgdoctor.render.document import Cell, Column, Document, Node, Styled, Table, Text, Trees
from pgdoctor.render.json_out import JsonRows, plain_json

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
    if report.ps is not None and report.ps.settings is None:
        return Text(
            [
                f"Capacity: {cap.clients} client backends; max_connections unknown "
                f"({report.ps.settings_error or 'the configuration is not readable'})"
            ],
            style="yellow",
        )
    reserved = f"superuser_reserved_connections {cap.superuser_reserved_connections}"
    if report.server.major >= 16:
        reserved += f", reserved_connections {cap.reserved_connections}"
    # highlighted as the analysis judged it (its --capacity-warn-pct), not by a threshold of its own
    saturated = any(f.code == "capacity" for f in report.findings)
    style = "bold red" if cap.slots_left == 0 else ("yellow" if saturated else "green")
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


def source_line(report: ConnectionsReport) -> Text | None:
    ps = report.ps
    if ps is None:
        return None
    where = f"postmaster pid {ps.pid}, port {ps.port}" + (
        f", data directory {ps.data_dir}" if ps.data_dir else ""
    )
    return Text(
        [
            f"Read from the process list ({where}), not over SQL: process titles show user, database, "
            "client and state; no application_name, ages, queries or lock holders."
        ],
        style="cyan",
    )


def document(report: ConnectionsReport, *, show_sessions: bool = False, full: bool = False) -> Document:
    title = f"pgdoctor connections: PostgreSQL {report.server.version}"
    source = source_line(report)
    if source is not None:
        title += " (process list)"
    sections: list[Any] = [s for s in (source, capacity_line(report)) if s is not None]
    sections.append(groups_table(report))
    if show_sessions:
        sections.append(sessions_table(report.sessions, full))
    primary = len(sections) - 1  # CSV: the sessions table with --sessions, else the groups
    sections.append(background_section(report))
    sections += pooler_note(report.server)
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
        "via_pgbouncer": (
            None
            if s.via_pgbouncer is None
            else {
                "client_addr": s.via_pgbouncer.client_addr,
                "client_port": s.via_pgbouncer.client_port,
                "application_name": s.via_pgbouncer.application_name,
                "pool": s.via_pgbouncer.pool,
            }
        ),
    }


def capacity_json(report: ConnectionsReport) -> dict[str, Any]:
    cap = report.capacity
    known = report.ps is None or report.ps.settings is not None
    return {
        "max_connections": cap.max_connections if known else None,
        "superuser_reserved_connections": cap.superuser_reserved_connections if known else None,
        "reserved_connections": cap.reserved_connections if known else None,
        "usable": cap.usable if known else None,
        "clients": cap.clients,
        "usage_pct": cap.usage_pct if known else None,
        "slots_left": cap.slots_left if known else None,
    }


def postmaster_json(report: ConnectionsReport) -> dict[str, Any] | None:
    ps = report.ps
    if ps is None:
        return None
    return {
        "pid": ps.pid,
        "port": ps.port,
        "data_dir": ps.data_dir,
        "cluster_name": ps.cluster_name,
        "settings_files": list(ps.settings_files),
        "settings_error": ps.settings_error,
    }


def to_json(report: ConnectionsReport) -> dict[str, Any]:
    """The JSON contract (README): what `json_payload` writes, as dicts and lists."""
    doc: dict[str, Any] = plain_json(json_payload(report))
    return doc


def json_payload(report: ConnectionsReport) -> dict[str, Any]:
    """What `--format json` writes; its sessions (100,000 in a large snapshot) are turned into JSON a
    batch at a time as they are written (`render.json_out.JsonRows`)."""
    doc: dict[str, Any] = {
        "command": "connections",
        "source": report.source,
        "server": server_json(report.server),
        "group_by": report.by,
        "capacity": capacity_json(report),
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
        "sessions": JsonRows(report.sessions, session_json),
        "background": [
            {"pid": s.pid, "backend_type": s.backend_type, "state": s.state} for s in report.background
        ],
        "findings": [f.to_json() for f in report.findings],
    }
    if report.ps is not None:
        doc["postmaster"] = postmaster_json(report)
    return doc
