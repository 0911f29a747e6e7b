"""`pgdoctor record`: what each tick reads on the one connection (pg_stat_activity, as `connections`
does), PgBouncer's pools on its console connection, and once, which server this is."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pgdoctor import queries
from pgdoctor.collect.activity import collect_activity
from pgdoctor.collect.connections import SETTINGS, ConnectionsData
from pgdoctor.collect.pgbouncer import Console, PoolRow, connect_console
from pgdoctor.collect.server import ServerInfo, collect_server
from pgdoctor.db import Database

QUERIES = {"recording": queries.SERVER_VERSIONS}


@dataclass(frozen=True)
class Identity:
    system_identifier: str | None
    database: str


def identity(db: Database) -> Identity:
    sql = queries.load("recording", queries.server_version(db.server_version_num))
    return db.rows(sql, Identity)[0]


def address(db: Database) -> str:
    """host:port as libpq connected (a unix socket's directory for host); never a password."""
    info = db.conn.info
    return f"{info.host}:{info.port}"


def server(db: Database) -> ServerInfo:
    """The server and the settings the `connections` analysis reads, once per recording run."""
    return collect_server(db, SETTINGS)


def read(db: Database, info: ServerInfo) -> ConnectionsData:
    """One tick's read: pg_stat_activity only (one round trip, like the bare query)."""
    return ConnectionsData(server=info, activity=collect_activity(db))


@contextmanager
def pgbouncer(dsn: str | None, timeout_s: float) -> Iterator[Console | None]:
    """PgBouncer's console for the whole recording, when a DSN is given; None otherwise."""
    if dsn is None:
        yield None
        return
    with connect_console(dsn, timeout_s) as console:
        yield console


def pgbouncer_version(console: Console) -> str:
    _, rows = console.show("VERSION")
    return str(rows[0][0]) if rows and rows[0] else "PgBouncer ?"


def pools(console: Console) -> list[PoolRow]:
    """One tick's read of PgBouncer: SHOW POOLS."""
    return console.rows("POOLS", PoolRow)
