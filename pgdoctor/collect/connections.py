"""Collect the sessions in pg_stat_activity and the settings that bound them."""

from __future__ import annotations

from dataclasses import dataclass

from pgdoctor.collect.activity import ActivityRow, collect_activity
from pgdoctor.collect.server import ServerInfo, collect_server
from pgdoctor.db import Database

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
class ConnectionsData:
    server: ServerInfo
    activity: list[ActivityRow]


def collect(db: Database) -> ConnectionsData:
    return capture(db, collect_server(db, SETTINGS), collect_activity(db))


def capture(db: Database, server: ServerInfo, activity: list[ActivityRow]) -> ConnectionsData:
    """The dataset from what a snapshot reads once for all (the server, pg_stat_activity)."""
    return ConnectionsData(server=server, activity=activity)
