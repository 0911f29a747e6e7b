"""Collect who waits on which lock, who blocks them, and (on request) the whole lock table in summary.

Cost model: `pg_blocking_pids()` over the sessions that wait on a lock is cheap whatever the size of
the lock table; `pg_locks` (`pg_lock_status()`) materialises every entry of it (about a microsecond
each) whatever the WHERE clause. So the sessions come from the one pg_stat_activity read
(`collect.activity`, which never touches pg_locks), `locks_waits` reads pg_locks once and only when
someone waits, and `locks_summary` (`--all`) reads it once more only when asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgdoctor import queries
from pgdoctor.collect import ranges
from pgdoctor.collect.activity import ActivityRow, collect_activity
from pgdoctor.collect.server import ServerInfo, collect_server
from pgdoctor.db import Database

QUERIES = {
    "locks_waits": queries.SERVER_VERSIONS,
    "locks_summary": queries.SERVER_VERSIONS,
}

SETTINGS = (
    "max_locks_per_transaction",
    "max_connections",
    "max_prepared_transactions",
    "deadlock_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
)


@dataclass(frozen=True)
class WaitLock:
    """One pg_locks row that is not granted: the lock a session waits for, with its object resolved."""

    pid: ranges.Pid
    locktype: str
    mode: str
    database: int | None
    datname: str | None
    local: bool  # in the database pgdoctor is connected to (or shared): names could be resolved
    relation: int | None
    relname: str | None  # schema.table, only when local
    page: int | None
    tuple: int | None
    virtualxid: str | None
    transactionid: str | None
    classid: int | None
    objid: int | None
    objsubid: int | None
    catalog: str | None  # the catalog of an `object` lock, e.g. pg_database
    description: str | None  # pg_describe_object(), PostgreSQL 14+ and local only
    wait_s: float | None  # from pg_locks.waitstart (PostgreSQL 14+)


@dataclass(frozen=True)
class LockTableStats:
    entries: int  # rows of pg_locks
    fastpath_entries: int  # of which are fast-path locks, kept per backend outside the shared table


@dataclass(frozen=True)
class SummaryRow:
    """Lock-table entries of one lock type, object and mode (`--all`)."""

    locktype: str
    mode: str
    database: int | None
    datname: str | None
    local: bool
    relation: int | None
    relname: str | None
    classid: int | None
    catalog: str | None
    held: int
    awaited: int
    fastpath: int
    sessions: int


@dataclass(frozen=True)
class LocksData:
    server: ServerInfo
    activity: list[ActivityRow]  # every backend; analysis keeps the waiters and what they wait on
    waits: list[WaitLock] | None  # None when pg_locks was not read (--fast)
    lock_table: LockTableStats | None  # None when pg_locks was not read at all
    summary: list[SummaryRow] | None  # None unless asked for (--all; snapshots always hold it)


@dataclass(frozen=True)
class _WaitsRow:
    entries: int
    fastpath_entries: int
    pid: int | None
    locktype: str | None
    mode: str | None
    database: int | None
    datname: str | None
    local: bool | None
    relation: int | None
    relname: str | None
    page: int | None
    tuple: int | None
    virtualxid: str | None
    transactionid: str | None
    classid: int | None
    objid: int | None
    objsubid: int | None
    catalog: str | None
    description: str | None
    wait_s: float | None


def _wait_lock(row: _WaitsRow) -> WaitLock | None:
    if row.pid is None or row.locktype is None or row.mode is None:
        return None
    return WaitLock(
        pid=row.pid,
        locktype=row.locktype,
        mode=row.mode,
        database=row.database,
        datname=row.datname,
        local=bool(row.local),
        relation=row.relation,
        relname=row.relname,
        page=row.page,
        tuple=row.tuple,
        virtualxid=row.virtualxid,
        transactionid=row.transactionid,
        classid=row.classid,
        objid=row.objid,
        objsubid=row.objsubid,
        catalog=row.catalog,
        description=row.description,
        wait_s=row.wait_s,
    )


def collect(db: Database, *, details: bool = True, summary: bool = True) -> LocksData:
    """Everything `pgdoctor locks` reads. `details`: read the waiting locks from pg_locks (one scan,
    only when someone waits); `summary`: also summarise the whole lock table (one more scan)."""
    server = collect_server(db, SETTINGS)
    return _collect(db, server, collect_activity(db), details=details, summary=summary)


def collect_again(
    db: Database, server: ServerInfo, *, details: bool = True, summary: bool = False
) -> LocksData:
    """What `collect` reads but the server's settings and role, already known (`locks --watch`'s ticks)."""
    return _collect(db, server, collect_activity(db), details=details, summary=summary)


def capture(db: Database, server: ServerInfo, activity: list[ActivityRow]) -> LocksData:
    """The dataset for a snapshot, from the server and pg_stat_activity it read once: with both scans."""
    return _collect(db, server, activity, details=True, summary=True)


def from_activity(
    db: Database,
    server: ServerInfo,
    activity: list[ActivityRow],
    *,
    details: bool = True,
    summary: bool = False,
) -> LocksData:
    """The dataset from a pg_stat_activity read the caller made (`pgdoctor triage`): pg_locks read once,
    only when someone waits, and the whole lock table summarised only when asked."""
    return _collect(db, server, activity, details=details, summary=summary)


def _collect(
    db: Database, server: ServerInfo, activity: list[ActivityRow], *, details: bool, summary: bool
) -> LocksData:
    version = queries.server_version(db.server_version_num)
    waits: list[WaitLock] | None = None
    stats: LockTableStats | None = None
    if details:
        waits = []
        if any(s.wait_event_type == "Lock" or s.blocked_by for s in activity):
            rows = db.rows(queries.load("locks_waits", version), _WaitsRow)
            stats = LockTableStats(rows[0].entries, rows[0].fastpath_entries) if rows else None
            waits = [w for w in map(_wait_lock, rows) if w is not None]
    summary_rows: list[SummaryRow] | None = None
    if summary:
        summary_rows = db.rows(queries.load("locks_summary", version), SummaryRow)
        if stats is None:
            stats = LockTableStats(
                sum(r.held + r.awaited for r in summary_rows), sum(r.fastpath for r in summary_rows)
            )
    return LocksData(server=server, activity=activity, waits=waits, lock_table=stats, summary=summary_rows)
