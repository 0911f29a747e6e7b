"""pg_stat_statements rows as pgdoctor reports them: statements and running queries, their ratios."""

from __future__ import annotations

from dataclasses import dataclass

from pgdoctor.analyze.common import HIDDEN_QUERY
from pgdoctor.collect.activity import ActivityRow
from pgdoctor.collect.server import ServerInfo
from pgdoctor.collect.statements import StatementRow
from pgdoctor.queries import parse_version

BLOCK_BYTES = 8192  # PostgreSQL's default block size; pg_stat_statements counts blocks


@dataclass(frozen=True)
class Statement:
    """One statement as pgdoctor reports it; times in milliseconds."""

    rank: int
    queryid: int | None
    query: str | None
    user: str | None
    database: str | None
    toplevel: bool
    calls: int
    total_ms: float
    mean_ms: float | None
    plans: int | None
    plan_ms: float | None  # total planning time; None where not tracked
    mean_plan_ms: float | None
    rows: int
    rows_per_call: float | None
    pct_total: float | None  # share of all top-level statement time, in %
    hit_ratio: float | None  # shared-buffer hits / (hits + reads), 0..1; None without block access
    shared_blks_hit: int
    shared_blks_read: int
    temp_blks_read: int
    temp_blks_written: int
    io_blks: int
    io_ms: float
    parallel_workers_to_launch: int | None
    parallel_workers_launched: int | None
    entry_age_s: float | None
    appeared: bool

    @property
    def visible(self) -> bool:
        return self.queryid is not None and self.query != HIDDEN_QUERY

    @property
    def label(self) -> str:
        return f"queryid {self.queryid}" if self.queryid is not None else f"a statement of {self.user}"


@dataclass(frozen=True)
class Running:
    pid: int
    application_name: str
    user: str | None
    database: str | None
    duration_s: float | None
    state: str | None
    wait_event: str | None
    queryid: int | None
    query: str | None


def blocks_text(blocks: int) -> str:
    size = float(blocks * BLOCK_BYTES)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.3g}{unit}"
        size /= 1024
    return f"{size:.3g}TB"


def _share_pct(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 2) if whole > 0 else None


def hit_ratio(hit: int, read: int) -> float | None:
    return round(hit / (hit + read), 4) if hit + read > 0 else None


def version_of(text: str) -> tuple[int, ...]:
    try:
        return parse_version(text)
    except ValueError:
        return (0,)


def work_mem_text(server: ServerInfo) -> str | None:
    """work_mem as people write it (4MB), from pg_settings' value and unit (kB)."""
    for row in server.settings:
        if row.name == "work_mem":
            if row.unit == "kB" and row.setting.isdigit():
                kb = int(row.setting)
                return f"{kb // 1024}MB" if kb % 1024 == 0 else f"{kb}kB"
            return row.setting + row.unit
    return None


def setting_on(server: ServerInfo, name: str) -> bool:
    return (server.setting(name) or "").lower() in ("on", "true", "1")


def to_statement(rank: int, row: StatementRow, all_exec_ms: float, plan_tracked: bool) -> Statement:
    plan_ms = row.total_plan_ms if plan_tracked else None
    return Statement(
        rank=rank,
        queryid=row.queryid,
        query=row.query,
        user=row.username,
        database=row.datname,
        toplevel=row.toplevel,
        calls=row.calls,
        total_ms=row.total_exec_ms,
        mean_ms=row.mean_exec_ms,
        plans=row.plans if plan_tracked else None,
        plan_ms=plan_ms,
        mean_plan_ms=plan_ms / row.plans if plan_ms is not None and row.plans else None,
        rows=row.rows,
        rows_per_call=round(row.rows / row.calls, 2) if row.calls else None,
        pct_total=_share_pct(row.total_exec_ms, all_exec_ms) if row.toplevel else None,
        hit_ratio=hit_ratio(row.shared_blks_hit, row.shared_blks_read),
        shared_blks_hit=row.shared_blks_hit,
        shared_blks_read=row.shared_blks_read,
        temp_blks_read=row.temp_blks_read,
        temp_blks_written=row.temp_blks_written,
        io_blks=row.io_blks,
        io_ms=row.io_ms,
        parallel_workers_to_launch=row.parallel_workers_to_launch,
        parallel_workers_launched=row.parallel_workers_launched,
        entry_age_s=row.entry_age_s,
        appeared=row.appeared,
    )


def to_running(row: ActivityRow) -> Running:
    return Running(
        pid=row.pid,
        application_name=row.application_name,
        user=row.usename,
        database=row.datname,
        duration_s=row.query_age_s,
        state=row.state,
        wait_event=f"{row.wait_event_type}:{row.wait_event}" if row.wait_event_type else None,
        queryid=row.query_id,
        query=row.query,
    )
