"""Draw a PgBouncerReport: pools, clients by application and address, server connections; its JSON."""

from __future__ import annotations

from typing import Any

from pgdoctor.analyze.format import duration
from pgdoctor.analyze.pgbouncer import PgBouncerReport
from pgdoctor.render.common import count, round_s
from pgdoctor.render.document import Cell, Column, Document, Styled, Table, Text


def pools_table(report: PgBouncerReport) -> Table:
    columns = [
        Column("pool (database/user)"),
        Column("mode"),
        Column("cl active", "right"),
        Column("cl waiting", "right"),
        Column("max wait", "right"),
        Column("sv active", "right"),
        Column("sv idle", "right"),
        Column("sv used", "right"),
        Column("sv tested", "right"),
        Column("sv login", "right"),
        Column("pool size", "right"),
        Column("reserve", "right"),
    ]
    rows: list[list[Cell]] = []
    for p in report.pools:
        name = p.name + (" (paused)" if p.paused else "") + (" (disabled)" if p.disabled else "")
        rows.append(
            [
                name,
                p.pool_mode,
                p.cl_active,
                count(p.cl_waiting, "bold red"),
                Styled(f"{p.maxwait_s:.1f}s", "bold red") if p.cl_waiting else Styled("0", "dim"),
                Styled(str(p.sv_active), "bold yellow" if p.sv_active >= p.pool_size else ""),
                p.sv_idle,
                p.sv_used,
                p.sv_tested,
                p.sv_login,
                p.pool_size,
                p.reserve_pool,
            ]
        )
    return Table("Pools", columns, rows)


def clients_table(report: PgBouncerReport) -> Table:
    columns = [
        Column("application"),
        Column("address"),
        Column("total", "right"),
        Column("active", "right"),
        Column("waiting", "right"),
        Column("longest wait", "right"),
        Column("pools"),
    ]
    rows: list[list[Cell]] = [
        [
            g.application_name,
            g.addr,
            g.total,
            g.active,
            count(g.waiting, "bold red"),
            f"{g.longest_wait_s:.1f}s" if g.waiting else "",
            ", ".join(g.pools),
        ]
        for g in report.client_groups
    ]
    return Table("Clients by application and address", columns, rows)


def servers_table(report: PgBouncerReport) -> Table:
    known = report.postgres is not None
    columns = [
        Column("pool"),
        Column("state"),
        Column("backend pid", "right"),
        Column("client"),
        Column("client application"),
        Column("since request", "right"),
    ]
    if known:
        columns += [Column("backend state"), Column("xact age", "right")]
    rows: list[list[Cell]] = []
    for s in report.servers:
        client = f"{s.client_addr}:{s.client_port}" if s.client_addr else ""
        row: list[Cell] = [
            s.pool,
            s.state,
            s.remote_pid,
            client,
            s.client_application_name or "",
            duration(s.request_age_s),
        ]
        if known:
            row += [s.backend_state or "", duration(s.xact_age_s)]
        rows.append(row)
    return Table("Server connections", columns, rows)


def bounds_line(report: PgBouncerReport) -> Text:
    cfg = report.config
    parts = [f"{k} {cfg[k]}" for k in cfg if k != "pool_mode"]
    line = f"Clients: {report.clients_total} of max_client_conn {report.max_client_conn}.  " + ", ".join(
        parts
    )
    lines = [line]
    if report.postgres is not None:
        pg = report.postgres
        lines.append(
            f"PostgreSQL {pg.version} behind it: {pg.clients} of {pg.usable} usable slots in use "
            f"(max_connections {pg.max_connections})"
        )
    return Text(lines)


def document(report: PgBouncerReport) -> Document:
    sections: list[Any] = [bounds_line(report), pools_table(report), clients_table(report)]
    sections.append(servers_table(report))
    return Document(f"pgdoctor pgbouncer: {report.version}", sections, report.findings, primary=1)


def to_json(report: PgBouncerReport) -> dict[str, Any]:
    pg = report.postgres
    return {
        "command": "pgbouncer",
        "server": {"version": report.version},
        "pools": [
            {
                "database": p.database,
                "user": p.user,
                "pool_mode": p.pool_mode,
                "cl_active": p.cl_active,
                "cl_waiting": p.cl_waiting,
                "sv_active": p.sv_active,
                "sv_idle": p.sv_idle,
                "sv_used": p.sv_used,
                "sv_tested": p.sv_tested,
                "sv_login": p.sv_login,
                "maxwait_s": p.maxwait_s,
                "pool_size": p.pool_size,
                "reserve_pool": p.reserve_pool,
                "max_db_connections": p.max_db_connections,
                "paused": p.paused,
                "disabled": p.disabled,
            }
            for p in report.pools
        ],
        "clients": [
            {
                "application_name": g.application_name,
                "addr": g.addr,
                "total": g.total,
                "active": g.active,
                "waiting": g.waiting,
                "other": g.other,
                "longest_wait_s": g.longest_wait_s,
                "pools": list(g.pools),
            }
            for g in report.client_groups
        ],
        "clients_total": report.clients_total,
        "servers": [
            {
                "pool": s.pool,
                "state": s.state,
                "remote_pid": s.remote_pid,
                "connect_age_s": round_s(s.connect_age_s),
                "request_age_s": round_s(s.request_age_s),
                "client": (
                    {
                        "addr": s.client_addr,
                        "port": s.client_port,
                        "application_name": s.client_application_name,
                    }
                    if s.client_addr is not None or s.client_port is not None
                    else None
                ),
                "backend_state": s.backend_state,
                "xact_age_s": round_s(s.xact_age_s),
                "held_s": round_s(s.held_s),
            }
            for s in report.servers
        ],
        "config": dict(report.config),
        "postgres": (
            {
                "version": pg.version,
                "max_connections": pg.max_connections,
                "usable": pg.usable,
                "clients": pg.clients,
            }
            if pg is not None
            else None
        ),
        "findings": [f.to_json() for f in report.findings],
    }
