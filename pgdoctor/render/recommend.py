"""Draw a RecommendReport: settings, pools, memory, findings; the conf/pgbouncer/sqlalchemy text; JSON."""

from __future__ import annotations

from typing import Any

from pgdoctor.analyze.recommend import RecommendReport
from pgdoctor.analyze.sizing import memory
from pgdoctor.analyze.sizing.memory import MemoryCheck
from pgdoctor.analyze.sizing.units import format_bytes
from pgdoctor.render import recommend_text as emit
from pgdoctor.render.common import pooler_note, server_json
from pgdoctor.render.document import Cell, Column, Document, Section, Styled, Table, Text


def header(report: RecommendReport) -> list[str]:
    i = report.inputs
    ram = format_bytes(i.ram_bytes) if i.ram_bytes is not None else "RAM unknown"
    cpus = f"{i.cpus} CPUs" if i.cpus else f"CPUs not given (pools sized for {report.pools.cpus})"
    where = f"server {report.server.version}" if report.server else "no server"
    return [
        f"pgdoctor recommend: PostgreSQL {report.pg_major}, {ram} RAM, {cpus}, {i.storage} storage, "
        f"{i.workload} workload ({where})",
    ]


def _apps_line(report: RecommendReport) -> str:
    p = report.pools
    if report.apps_source == "none":
        return "Applications: none given (--app NAME=PROCESSES[xTHREADS])"
    src = "observed in pg_stat_activity" if report.apps_source == "observed" else "given"
    return f"Applications ({src}): {len(p.apps)}, up to {p.client_total} connections at once"


def settings_table(report: RecommendReport) -> Table:
    live = report.server is not None
    columns = [Column("setting"), Column("value", "right")]
    if live:
        columns += [Column("current", "right"), Column("restart")]
    columns.append(Column("reason"))
    rows: list[list[Cell]] = []
    for s in report.settings:
        value: Cell = s.value if s.value is not None else Styled("(needs --ram)", "dim")
        if s.per_role and s.value is not None:
            value = f"{s.value} (per role)"
        row: list[Cell] = [s.name, value]
        if live:
            cur: Cell = s.current if s.current is not None else ""
            if s.changes:
                cur = Styled(s.current or "", "yellow")
            restart = (
                "pending"
                if s.pending_restart
                else ("yes" if s.restart else ("" if s.restart is None else "no"))
            )
            row += [cur, restart]
        row.append(s.reason)
        rows.append(row)
    return Table("PostgreSQL settings", columns, rows)


def pools_text(report: RecommendReport) -> Text:
    p = report.pools
    reserved = f"superuser_reserved_connections {p.superuser_reserved}"
    if report.pg_major >= 16:
        reserved += f", reserved_connections {p.reserved_connections}"
    return Text(
        [
            f"Server connection budget: {p.usable} usable slots [max_connections {p.max_connections} minus "
            f"{reserved}]; the CPUs run about {p.cpu_pool} queries at once ({p.cpus} CPUs x 2 + {p.spindles} "
            "spindle(s))",
            _apps_line(report),
            p.pgbouncer_reason,
        ]
    )


def pgbouncer_table(report: RecommendReport) -> Table | None:
    b = report.pools.pgbouncer
    if b is None:
        return None
    rows: list[list[Cell]] = [[k, v, b.reasons[k]] for k, v in emit.pgbouncer_values(b).items()]
    return Table(
        "PgBouncer [pgbouncer]", [Column("setting"), Column("value", "right"), Column("reason")], rows
    )


def apps_table(report: RecommendReport) -> Table:
    columns = [
        Column("application"),
        Column("processes", "right"),
        Column("threads", "right"),
        Column("pool"),
        Column("pool_size", "right"),
        Column("max_overflow", "right"),
        Column("per process", "right"),
        Column("total", "right"),
    ]
    rows: list[list[Cell]] = [
        [
            a.name,
            a.processes,
            a.threads,
            a.poolclass,
            "" if a.pool_size is None else a.pool_size,
            "" if a.max_overflow is None else a.max_overflow,
            a.per_process,
            a.total,
        ]
        for a in report.pools.apps
    ]
    target = "max_client_conn" if report.pools.pgbouncer else "usable server slots"
    limit = report.pools.pgbouncer.max_client_conn if report.pools.pgbouncer else report.pools.usable
    caption = f"total {report.pools.client_total} of {limit} {target}" if rows else ""
    return Table("Application pools (SQLAlchemy create_engine)", columns, rows, caption)


def memory_text(report: RecommendReport) -> Text:
    lines = []
    if report.memory is not None:
        lines.append(f"Memory, recommended: {memory.describe(report.memory)}")
    if report.current_memory is not None:
        lines.append(f"Memory, running: {memory.describe(report.current_memory)}")
    if not lines:
        lines.append("Memory: give --ram for the worst-case check")
    return Text(lines)


def document(report: RecommendReport) -> Document:
    sections: list[Section] = [settings_table(report), pools_text(report)]
    bouncer = pgbouncer_table(report)
    if bouncer is not None:
        sections.append(bouncer)
    sections += [apps_table(report), memory_text(report)]
    sections += pooler_note(report.server)
    return Document(header(report)[0], sections, report.findings, primary=0)


def conf(report: RecommendReport) -> str:
    return emit.conf_block(
        [
            *header(report),
            "paste into postgresql.conf (or a file it includes); restart for postmaster settings",
        ],
        [(s.name, s.value, s.reason, s.per_role) for s in report.settings],
    )


def pgbouncer(report: RecommendReport) -> str | None:
    b = report.pools.pgbouncer
    if b is None:
        return None
    return emit.pgbouncer_block(
        [
            *header(report),
            "the [pgbouncer] section of pgbouncer.ini; keep your [databases], listen_* and auth_* lines",
        ],
        b,
    )


def sqlalchemy(report: RecommendReport) -> str:
    return emit.sqlalchemy_block(header(report), report.pools.apps, report.pools.pgbouncer is not None)


def memory_json(m: MemoryCheck | None) -> dict[str, Any] | None:
    if m is None:
        return None
    return {
        "worst_case_bytes": m.worst_case_bytes,
        "ram_bytes": m.ram_bytes,
        "headroom_bytes": m.headroom_bytes,
        "headroom_pct": m.headroom_pct,
        "shared_buffers_bytes": m.shared_buffers_bytes,
        "wal_buffers_bytes": m.wal_buffers_bytes,
        "work_mem_bytes": m.work_mem_bytes,
        "hash_mem_multiplier": m.hash_mem_multiplier,
        "backends": m.backends,
        "work_mem_total_bytes": m.work_mem_total_bytes,
        "autovacuum_workers": m.autovacuum_workers,
        "autovacuum_mem_bytes": m.autovacuum_mem_bytes,
        "autovacuum_total_bytes": m.autovacuum_total_bytes,
    }


def to_json(report: RecommendReport) -> dict[str, Any]:
    i, p, b = report.inputs, report.pools, report.pools.pgbouncer
    return {
        "command": "recommend",
        "server": server_json(report.server) if report.server else None,
        "inputs": {
            "ram_bytes": i.ram_bytes,
            "cpus": i.cpus,
            "cpus_assumed": p.cpus if p.cpus_assumed else None,
            "storage": i.storage,
            "workload": i.workload,
            "pg_version": report.pg_major,
            "max_connections": i.max_connections,
            "pgbouncer": i.pgbouncer,
            "databases": i.databases,
            "apps_source": report.apps_source,
            "apps": [{"name": a.name, "processes": a.processes, "threads": a.threads} for a in p.apps],
        },
        "settings": [
            {
                "name": s.name,
                "value": s.value,
                "current": s.current,
                "reason": s.reason,
                "per_role": s.per_role,
                "differs_from_pgtune": s.differs_from_pgtune,
                "context": s.context,
                "restart": s.restart,
                "pending_restart": s.pending_restart,
                "changes": s.changes,
            }
            for s in report.settings
        ],
        "pools": {
            "server_budget": p.usable,
            "max_connections": p.max_connections,
            "superuser_reserved_connections": p.superuser_reserved,
            "reserved_connections": p.reserved_connections,
            "cpu_pool": p.cpu_pool,
            "work_mem_connections": p.work_mem_connections,
            "client_total": p.client_total,
            "fits": p.fits,
            "pgbouncer_reason": p.pgbouncer_reason,
            "pgbouncer": None
            if b is None
            else {
                "pool_mode": b.pool_mode,
                "default_pool_size": b.default_pool_size,
                "reserve_pool_size": b.reserve_pool_size,
                "reserve_pool_timeout": b.reserve_pool_timeout,
                "max_client_conn": b.max_client_conn,
                "max_db_connections": b.max_db_connections,
                "server_idle_timeout": b.server_idle_timeout,
                "databases": b.databases,
                "server_total": b.server_total,
            },
            "apps": [
                {
                    "name": a.name,
                    "processes": a.processes,
                    "threads": a.threads,
                    "observed": a.observed,
                    "poolclass": a.poolclass,
                    "pool_size": a.pool_size,
                    "max_overflow": a.max_overflow,
                    "pool_timeout": a.pool_timeout,
                    "pool_recycle": a.pool_recycle,
                    "pool_pre_ping": a.pool_pre_ping,
                    "per_process": a.per_process,
                    "total": a.total,
                    "create_engine": emit.engine_kwargs(a),
                }
                for a in p.apps
            ],
        },
        "memory": memory_json(report.memory),
        "current_memory": memory_json(report.current_memory),
        "findings": [f.to_json() for f in report.findings],
    }
