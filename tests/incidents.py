"""Build the situations pgdoctor diagnoses, for real, on a test cluster.

Sessions that must stay busy (a running query, a lock wait) are driven through libpq's asynchronous
API (`send_query`), so hundreds of them need no thread each.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from psycopg import pq

from tests.pgcluster import Cluster


class Sessions:
    """Client sessions opened for a scenario; closing it ends them all."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.conns: list[psycopg.Connection[Any]] = []
        self.raw: list[pq.abc.PGconn] = []
        self.closers: list[Callable[[], None]] = []

    def open(self, app: str, user: str = "postgres", dbname: str = "postgres") -> psycopg.Connection[Any]:
        conn = psycopg.connect(
            self.cluster.dsn(user=user, dbname=dbname), application_name=app, autocommit=True
        )
        self.conns.append(conn)
        return conn

    def idle(self, app: str, n: int = 1, **kw: str) -> list[int]:
        """n sessions that ran one query and sit idle."""
        pids = []
        for _ in range(n):
            conn = self.open(app, **kw)
            conn.execute("SELECT 1")
            pids.append(conn.info.backend_pid)
        return pids

    def idle_in_transaction(self, app: str, statement: str = "SELECT 1", **kw: str) -> int:
        """A session that began a transaction, ran `statement` and then went quiet."""
        conn = self.open(app, **kw)
        conn.execute("BEGIN")
        conn.execute(statement.encode())
        return conn.info.backend_pid

    def aborted(self, app: str, **kw: str) -> int:
        """A session idle in a transaction that failed (idle in transaction (aborted))."""
        conn = self.open(app, **kw)
        conn.execute("BEGIN")
        with contextlib.suppress(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1/0")
        return conn.info.backend_pid

    def send(self, app: str, statement: str, user: str = "postgres", dbname: str = "postgres") -> int:
        """A session that starts `statement` and does not wait for it (it runs, or waits on a lock)."""
        conninfo = self.cluster.dsn(user=user, dbname=dbname, application_name=app)
        raw = pq.PGconn.connect(conninfo.encode())
        if raw.status != pq.ConnStatus.OK:
            raise RuntimeError(raw.get_error_message())
        raw.send_query(statement.encode())
        raw.flush()
        self.raw.append(raw)
        return int(raw.backend_pid)

    def close(self) -> None:
        for closer in self.closers:
            closer()
        for conn in self.conns:
            conn.close()
        for raw in self.raw:
            raw.finish()
        self.cluster.terminate_others()


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def _wait_for_state(cluster: Cluster, pids: Iterable[int], condition: str, what: str, timeout: float) -> None:
    wanted = sorted(pids)

    def reached() -> bool:
        rows = cluster.sql(f"SELECT pid FROM pg_stat_activity WHERE {condition} AND pid = ANY(%s)", [wanted])
        return sorted(r[0] for r in rows) == wanted

    wait_until(reached, timeout, f"pids {wanted} to {what}")


def wait_for_lock_waits(cluster: Cluster, pids: Iterable[int], timeout: float = 10.0) -> None:
    """Block until every pid in `pids` waits on a heavyweight lock."""
    _wait_for_state(cluster, pids, "wait_event_type = 'Lock'", "wait on locks", timeout)


def wait_for_active(cluster: Cluster, pids: Iterable[int], timeout: float = 10.0) -> None:
    """Block until every pid in `pids` is running a statement."""
    _wait_for_state(cluster, pids, "state = 'active'", "be active", timeout)
