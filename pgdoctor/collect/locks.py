"""Collect who waits on which lock, who blocks them, and (on request) the whole lock table in summary.

Cost model: `pg_blocking_pids()` over the sessions that wait on a lock is cheap whatever the size of
the lock table; `pg_locks` (`pg_lock_status()`) materialises every entry of it (about a microsecond
each) whatever the WHERE clause. So `locks_activity` never touches pg_locks, `locks_waits` reads it
once and only when someone waits, and `locks_summary` (`--all`) reads it once more only when asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgdoctor import queries
from pgdoctor.collect.server import ServerInfo, collect_server
from pgdoctor.db import Database
from pgdoctor.secrets import mask_rows

QUERIES = {
    "locks_activity": queries.SERVER_VERSIONS,
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
class LockSession:
    """A backend that waits on a lock or that one of the waiters waits on (pg_stat_activity)."""

    pid: int
    backend_type: str
    datname: str | None
    usename: str | None
    application_name: str
    state: str | None
    wait_event_type: str | None
    wait_event: str | None  # for a lock wait: the lock type (relation, tuple, transactionid, …)
    xact_age_s: float | None
    query_age_s: float | None
    state_age_s: float | None
    query: str | None
    blocked_by: list[int]  # pg_blocking_pids(); 0 stands for a prepared transaction


@dataclass(frozen=True)
class WaitLock:
    """One pg_locks row that is not granted: the lock a session waits for, with its object resolved."""

    pid: int
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
    sessions: list[LockSession]
    waits: list[WaitLock] | None  # None when pg_locks was not read (--fast)
    lock_table: LockTableStats | None  # None when pg_locks was not read at all
    summary: list[SummaryRow] | None  # None unless asked for (--all; snapshots always hold it)


def in_picture(rows: list[LockSession]) -> list[LockSession]:
    """The sessions that wait on a lock, and the ones they wait on."""
    blockers = {pid for r in rows for pid in r.blocked_by}
    return sorted(
        (r for r in rows if r.wait_event_type == "Lock" or r.blocked_by or r.pid in blockers),
        key=lambda r: r.pid,
    )


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
    only when someone waits); `summary`: also summarise the whole lock table (one more scan).
    Snapshots take both."""
    version = queries.server_version(db.server_version_num)
    server = collect_server(db, SETTINGS)
    sessions = in_picture(db.rows(queries.load("locks_activity", version), LockSession))
    sessions = mask_rows(sessions)  # no password in any output or snapshot
    waits: list[WaitLock] | None = None
    stats: LockTableStats | None = None
    if details:
        waits = []
        if any(s.wait_event_type == "Lock" or s.blocked_by for s in sessions):
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
    return LocksData(server=server, sessions=sessions, waits=waits, lock_table=stats, summary=summary_rows)
