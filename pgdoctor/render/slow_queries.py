"""Draw a SlowQueriesReport: where pg_stat_statements stands, the top statements, what runs now; JSON."""

from __future__ import annotations

from typing import Any

from pgdoctor.analyze.format import duration
from pgdoctor.analyze.slow_queries import Running, SlowQueriesReport, Statement
from pgdoctor.render.common import pooler_note, round_s, server_json, shorten
from pgdoctor.render.document import Cell, Column, Document, Styled, Table, Text

SORT_HEADER = {
    "total": "total time",
    "mean": "mean time",
    "calls": "calls",
    "rows": "rows",
    "io": "blocks read",
    "temp": "temp blocks written",
    "plan": "planning time",
}


def _fixed(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _pct_text(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _ratio_pct_text(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}"


def source_line(report: SlowQueriesReport) -> Text:
    ext = report.extension
    if not report.available:
        where = f"pg_stat_statements: {ext.status.replace('_', ' ')} (database {ext.database})"
        return Text([where], style="bold red")
    parts = [f"pg_stat_statements {ext.version} (schema {ext.schema}, database {ext.database})"]
    t = report.totals
    if report.interval_s is not None:
        parts.append(f"difference over {report.interval_s:g}s")
    elif report.stats_reset_age_s is not None:
        parts.append(f"since the reset {duration(report.stats_reset_age_s)} ago")
    else:
        parts.append("since the last reset")
    if t is not None:
        held = f"{t.entries} statements tracked" + (
            f" of max {report.max_entries}" if report.max_entries else ""
        )
        parts.append(held)
        parts.append(f"{t.all_exec_ms / 1000:,.1f} s of statement time")
        if report.dealloc:
            parts.append(f"{report.dealloc} deallocations")
        if report.interval_s is not None:
            parts.append(f"{t.appeared} appeared, {t.evicted or 0} evicted between the reads")
    lines = ["; ".join(parts)]
    filters = [
        f"{k} {v}" for k, v in (("database", report.database_filter), ("user", report.user_filter)) if v
    ]
    if filters:
        lines.append("filtered to " + ", ".join(filters))
    lines += [f"note: {n}" for n in report.notes]
    return Text(lines)


def statements_table(report: SlowQueriesReport, full: bool) -> Table:
    columns = [
        Column("#", "right"),
        Column("queryid", "right"),
        Column("user"),
        Column("database"),
        Column("calls", "right"),
        Column("total ms", "right"),
        Column("mean ms", "right"),
    ]
    if report.plan_tracked:
        columns.append(Column("plan ms", "right"))
    columns += [
        Column("% total", "right"),
        Column("rows/call", "right"),
        Column("hit %", "right"),
        Column("blks read", "right"),
        Column("temp written", "right"),
        Column("query"),
    ]
    rows: list[list[Cell]] = []
    for s in report.statements:
        row: list[Cell] = [
            s.rank,
            "" if s.queryid is None else str(s.queryid),
            s.user,
            s.database,
            s.calls,
            _fixed(s.total_ms),
            _fixed(s.mean_ms, 3),
        ]
        if report.plan_tracked:
            row.append(_fixed(s.plan_ms))
        hit = _ratio_pct_text(s.hit_ratio)
        low_hit = report.thresholds.low_hit(s.hit_ratio, s.shared_blks_read)
        row += [
            _pct_text(s.pct_total),
            _fixed(s.rows_per_call),
            Styled(hit, "yellow") if low_hit else hit,
            s.shared_blks_read,
            Styled(str(s.temp_blks_written), "yellow") if s.temp_blks_written else 0,
            shorten(s.query, 0 if full else 60),
        ]
        rows.append(row)
    title = f"Top statements by {SORT_HEADER[report.sort]}"
    caption = "" if report.statements or not report.available else "(no statement recorded)"
    return Table(title, columns, rows, caption=caption)


def running_table(report: SlowQueriesReport, full: bool) -> Table:
    """The running statements grouped by (application, user, database, normalised query), with a count:
    58 sessions of one query are one row (`--format json` lists every session under `running`)."""
    columns = [
        Column("sessions", "right"),
        Column("application"),
        Column("user"),
        Column("database"),
        Column("longest", "right"),
        Column("waiting on a lock", "right"),
        Column("query"),
    ]
    rows: list[list[Cell]] = [
        [
            g.count,
            g.application_name,
            g.user,
            g.database,
            duration(g.longest_s),
            g.blocked or "",
            shorten(g.query, 0 if full else 60),
        ]
        for g in report.running_groups
    ]
    return Table(f"Running now for over {report.running_min_s:g}s (pg_stat_activity)", columns, rows)


def document(report: SlowQueriesReport, *, full: bool = False) -> Document:
    title = f"pgdoctor slow-queries: PostgreSQL {report.server.version}"
    sections: list[Any] = [source_line(report)]
    if report.available:
        sections.append(statements_table(report, full))
    sections.append(running_table(report, full))
    sections += pooler_note(report.server)
    # CSV prints the statements, or the running ones when pg_stat_statements cannot be read
    return Document(title, sections, report.findings, primary=1)


def statement_json(s: Statement) -> dict[str, Any]:
    return {
        "rank": s.rank,
        "queryid": s.queryid,
        "query": s.query,
        "user": s.user,
        "database": s.database,
        "toplevel": s.toplevel,
        "calls": s.calls,
        "total_ms": round(s.total_ms, 3),
        "mean_ms": None if s.mean_ms is None else round(s.mean_ms, 3),
        "plans": s.plans,
        "plan_ms": None if s.plan_ms is None else round(s.plan_ms, 3),
        "mean_plan_ms": None if s.mean_plan_ms is None else round(s.mean_plan_ms, 3),
        "rows": s.rows,
        "rows_per_call": s.rows_per_call,
        "pct_total": s.pct_total,
        "hit_ratio": s.hit_ratio,
        "shared_blks_hit": s.shared_blks_hit,
        "shared_blks_read": s.shared_blks_read,
        "temp_blks_read": s.temp_blks_read,
        "temp_blks_written": s.temp_blks_written,
        "io_ms": round(s.io_ms, 3),
        "parallel_workers_to_launch": s.parallel_workers_to_launch,
        "parallel_workers_launched": s.parallel_workers_launched,
        "entry_age_s": round_s(s.entry_age_s),
        "appeared": s.appeared,
    }


def running_json(r: Running) -> dict[str, Any]:
    return {
        "pid": r.pid,
        "application_name": r.application_name,
        "user": r.user,
        "database": r.database,
        "duration_s": round_s(r.duration_s),
        "state": r.state,
        "wait_event": r.wait_event,
        "queryid": r.queryid,
        "query": r.query,
    }


def to_json(report: SlowQueriesReport) -> dict[str, Any]:
    ext = report.extension
    t = report.totals
    return {
        "command": "slow-queries",
        "server": server_json(report.server),
        "source": "pg_stat_statements",
        "available": report.available,
        "status": ext.status,
        "database": ext.database,
        "extension_version": ext.version,
        "extension_schema": ext.schema,
        "extension_default_version": ext.default_version,
        "sort": report.sort,
        "limit": report.limit,
        "filters": {"database": report.database_filter, "user": report.user_filter},
        "interval_s": report.interval_s,
        "totals": {
            "statements": t.entries if t else None,
            "max": report.max_entries,
            "total_ms": round(t.all_exec_ms, 3) if t else None,
            "hidden": t.hidden if t else None,
            "spilling": t.spilling if t else None,
            "appeared": t.appeared if t and report.interval_s is not None else None,
            "evicted": t.evicted if t else None,
            "dealloc": report.dealloc,
            "stats_reset": report.stats_reset,
            "stats_reset_age_s": round_s(report.stats_reset_age_s),
            "plan_tracked": report.plan_tracked,
        },
        "statements": [statement_json(s) for s in report.statements],
        "running": [running_json(r) for r in report.running],
        "running_groups": [
            {
                "application_name": g.application_name,
                "user": g.user,
                "database": g.database,
                "query": g.query,
                "queryid": g.queryid,
                "count": g.count,
                "blocked": g.blocked,
                "longest_s": round_s(g.longest_s),
                "pids": list(g.pids),
            }
            for g in report.running_groups
        ],
        "findings": [f.to_json() for f in report.findings],
    }
