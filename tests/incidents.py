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


# --- pg_stat_statements workloads (pgdoctor slow-queries) -----------------------------------------

SHOP_ROLE = "shop_app"
REPORT_ROLE = "report_app"
SHOP_DB = "shop"
ANALYTICS_DB = "analytics"
LOOKUP_SQL = "SELECT id, total FROM orders WHERE customer = %s"
UPDATE_SQL = "UPDATE counters SET n = n + 1 WHERE id = %s"
SORT_SQL = "SELECT id, payload FROM events ORDER BY payload DESC"
SCAN_SQL = "SELECT count(*) FROM big_events WHERE payload LIKE %s"


def ensure_role(cluster: Cluster, role: str) -> None:
    cluster.sql(
        f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
        f"CREATE ROLE {role} LOGIN; END IF; END$$"
    )


def ensure_database(cluster: Cluster, name: str, owner: str = "postgres") -> None:
    if not cluster.sql("SELECT 1 FROM pg_database WHERE datname = %s", [name]):
        cluster.sql(f"CREATE DATABASE {name} OWNER {owner}")


def restart(cluster: Cluster) -> None:
    """Restart the server (fast shutdown): shared buffers start empty; pg_stat_statements keeps its data."""
    cluster._run(
        [str(cluster.bin / "pg_ctl"), "-D", str(cluster.data), "-l", str(cluster.base / "log"), "-m", "fast",
         "-w", "restart"]
    )  # fmt: skip


def statements_workload(cluster: Cluster, lookups: int = 1000, updates: int = 1000, sorts: int = 3) -> None:
    """The slow-queries incident, for real: after a reset of pg_stat_statements,
    - shop_app in database shop: an unindexed lookup (Seq Scan over 20,000 orders) called `lookups` times,
      and a hot single-row update called `updates` times;
    - report_app in database analytics: a sort larger than its work_mem (64kB: temp files) `sorts`
      times, and a scan of a table larger than a quarter of shared_buffers (read through a small ring
      buffer, so a low hit ratio) 3 times.
    """
    for role in (SHOP_ROLE, REPORT_ROLE):
        ensure_role(cluster, role)
    ensure_database(cluster, SHOP_DB, SHOP_ROLE)
    ensure_database(cluster, ANALYTICS_DB, REPORT_ROLE)
    # another test may have made the database first
    cluster.sql(f"GRANT ALL ON SCHEMA public TO {SHOP_ROLE}", dbname=SHOP_DB)
    cluster.sql(f"GRANT ALL ON SCHEMA public TO {REPORT_ROLE}", dbname=ANALYTICS_DB)
    with cluster.connect(user=SHOP_ROLE, dbname=SHOP_DB) as conn:
        conn.execute("DROP TABLE IF EXISTS orders, counters")
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, customer int, total numeric)")
        conn.execute("INSERT INTO orders SELECT g, g % 5000, g * 1.5 FROM generate_series(1, 20000) g")
        conn.execute("CREATE TABLE counters (id int PRIMARY KEY, n int)")
        conn.execute("INSERT INTO counters SELECT g, 0 FROM generate_series(1, 10) g")
        conn.execute("VACUUM ANALYZE orders, counters")
    with cluster.connect(user=REPORT_ROLE, dbname=ANALYTICS_DB) as conn:
        conn.execute("DROP TABLE IF EXISTS events, big_events")
        conn.execute("CREATE TABLE events (id int, payload text)")
        conn.execute("INSERT INTO events SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
        # more than shared_buffers / 4 (64MB / 4): sequential scans of it go through a 256kB ring
        conn.execute("CREATE TABLE big_events (id int, payload text)")
        conn.execute(
            "INSERT INTO big_events SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 160000) g"
        )
        conn.execute("VACUUM ANALYZE events, big_events")
    restart(cluster)  # empty shared buffers: big_events is then read through its ring buffer
    cluster.sql("SELECT pg_stat_statements_reset()")
    with cluster.connect(user=SHOP_ROLE, dbname=SHOP_DB) as conn:
        for i in range(lookups):
            conn.execute(LOOKUP_SQL, [i % 5000])
        for i in range(updates):
            conn.execute(UPDATE_SQL, [i % 10 + 1])
    with cluster.connect(user=REPORT_ROLE, dbname=ANALYTICS_DB) as conn:
        conn.execute("SET work_mem = '64kB'")
        for _ in range(sorts):
            conn.execute(SORT_SQL).fetchall()
        for _ in range(3):
            conn.execute(SCAN_SQL, ["zz%"])
