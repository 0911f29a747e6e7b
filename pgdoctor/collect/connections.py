"""Collect the sessions in pg_stat_activity and the settings that bound them."""

from __future__ import annotations

from dataclasses import dataclass

from pgdoctor import queries
from pgdoctor.collect.server import ServerInfo, collect_server
from pgdoctor.db import Database
from pgdoctor.secrets import mask_rows

QUERIES = {"activity": queries.SERVER_VERSIONS}

SETTINGS = (
    "max_connections",
    "superuser_reserved_connections",
    "reserved_connections",  # PostgreSQL 16+
    "idle_in_transaction_session_timeout",
    "idle_session_timeout",  # PostgreSQL 14+
    "statement_timeout",
    "max_wal_senders",
    "max_worker_processes",
    "autovacuum_max_workers",
)


@dataclass(frozen=True)
class ActivityRow:
    """One backend from pg_stat_activity; ages in seconds at capture time, None where not visible."""

    pid: int
    backend_type: str
    datname: str | None
    usename: str | None
    application_name: str
    client_addr: str | None
    client_hostname: str | None
    state: str | None
    wait_event_type: str | None
    wait_event: str | None
    backend_age_s: float | None
    xact_age_s: float | None
    query_age_s: float | None
    state_age_s: float | None
    xmin_age: int | None
    leader_pid: int | None
    query_id: int | None
    query: str | None
    blocked_by: list[int]


@dataclass(frozen=True)
class ConnectionsData:
    server: ServerInfo
    activity: list[ActivityRow]


def collect(db: Database) -> ConnectionsData:
    server = collect_server(db, SETTINGS)
    sql = queries.load("activity", queries.server_version(db.server_version_num))
    activity = mask_rows(db.rows(sql, ActivityRow))  # no password in any output or snapshot
    return ConnectionsData(server=server, activity=activity)
