"""Harmless behind a pooler: a real PgBouncer (Debian's 1.18) in front of PostgreSQL 15 and 18.

An application writes and runs statements longer than pgdoctor's --timeout through the same PgBouncer
before, during and after pgdoctor runs every command; nothing of pgdoctor's may reach it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgdoctor.errors import ExitCode
from tests.conftest import run_cli
from tests.pgbouncer import PgBouncer, available, running_pgbouncer
from tests.pgcluster import Cluster

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(not available(), reason="PgBouncer is not installed (apt-get install pgbouncer)"),
]

TIMEOUT = 1.0  # pgdoctor's --timeout
LONG = TIMEOUT + 0.6  # the application's long statements outlast it
APP_THREADS = 3
SETTINGS: tuple[str, ...] = (
    "default_transaction_read_only",
    "statement_timeout",
    "lock_timeout",
    "search_path",
    "idle_in_transaction_session_timeout",
    "application_name",
)


class App:
    """Threads that write through the pooler and check, in every transaction, what they got."""

    def __init__(self, bouncer: PgBouncer) -> None:
        self.bouncer = bouncer
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.writes = 0
        self.long_runs = 0
        self.seen: set[tuple[str, ...]] = set()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(APP_THREADS)]

    def connect(self, i: int) -> psycopg.Connection[Any]:
        # thread 0 sets no application_name (a server connection labelled by someone else shows it);
        # thread 2 reconnects for every unit of work (session mode: it gets pgdoctor's old connection)
        name = {} if i == 0 else {"application_name": f"app{i}"}
        return self.bouncer.connect(**name)

    def run(self, i: int) -> None:
        conn = self.connect(i)
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                if i == 2:
                    conn.close()
                    conn = self.connect(i)
                try:
                    with conn.transaction():
                        got = conn.execute(
                            "SELECT " + ", ".join(f"current_setting('{s}')" for s in SETTINGS)
                        ).fetchone()
                        conn.execute("INSERT INTO app_writes (thread) VALUES (%s)", [i])
                    assert got is not None
                    with self.lock:
                        self.seen.add(tuple(got))
                        self.writes += 1
                    if n % 3 == i % 3:  # every thread now and then runs a statement longer than --timeout
                        conn.execute("SELECT pg_sleep(%s)", [LONG])
                        with self.lock:
                            self.long_runs += 1
                except psycopg.Error as exc:
                    with self.lock:
                        self.errors.append(f"thread {i}: {type(exc).__name__}: {exc}")
                    conn.close()
                    conn = self.connect(i)
        finally:
            conn.close()

    def __enter__(self) -> App:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


def pgdoctor_runs(bouncer: PgBouncer, tmp: Path) -> list[dict[str, Any]]:
    """Every command, some twice, through the pooler; their JSON (the snapshot's datasets for snapshot)."""
    dsn = bouncer.dsn()
    runs = [
        ["connections", "-f", "json"],
        ["locks", "--all", "-f", "json"],
        ["slow-queries", "-f", "json"],
        ["recommend", "--ram", "4GB", "-f", "json"],
        ["snapshot", "-o", str(tmp / "snap.json")],
        ["connections", "-f", "json", "--sessions"],
        ["slow-queries", "-f", "json", "--interval", "0.3"],
    ]
    docs = []
    for args in runs:
        result = run_cli(*args, "-d", dsn, "--timeout", str(TIMEOUT))
        assert result.returncode == 0, (args, result.stderr)
        if args[0] == "snapshot":
            snap = json.loads((tmp / "snap.json").read_text())
            docs.append({"server": snap["server"]})  # one server for every dataset (format 2)
        else:
            docs.append(json.loads(result.stdout))
    return docs


def server_connection_settings(pg: Cluster, bouncer: PgBouncer) -> list[tuple[str, ...]]:
    """What every server connection of the pool gives a client: hold them all at once, one client each."""
    servers = len([s for s in bouncer.admin("SHOW SERVERS") if s["database"] == "postgres"])
    clients = [bouncer.connect(autocommit=False, application_name="checker") for _ in range(servers)]
    try:
        got = []
        for conn in clients:  # each holds its server connection until rollback (any pool mode)
            row = conn.execute(
                "SELECT " + ", ".join(f"current_setting('{s}')" for s in SETTINGS[:-1])
            ).fetchone()
            assert row is not None
            got.append(tuple(row))
        return got
    finally:
        for conn in clients:
            conn.rollback()
            conn.close()


@pytest.fixture(params=["transaction", "session"])
def bouncer(request: pytest.FixtureRequest, pg: Cluster) -> Iterator[PgBouncer]:
    pg.sql("CREATE TABLE IF NOT EXISTS app_writes (id bigserial, thread int, at timestamptz DEFAULT now())")
    pool = APP_THREADS + 2  # room for the application, pgdoctor and the checks: nobody queues
    with running_pgbouncer(pg, pool_mode=request.param, pool_size=pool) as b:
        yield b
    pg.terminate_others()


def test_pgdoctor_leaves_nothing_on_pooled_connections(
    pg: Cluster, bouncer: PgBouncer, tmp_path: Path
) -> None:
    before = pg.sql("SELECT count(*) FROM app_writes")[0][0]
    with App(bouncer) as app:
        deadline = time.monotonic() + 30
        while app.long_runs < APP_THREADS and time.monotonic() < deadline:  # before pgdoctor
            time.sleep(0.05)
        docs = pgdoctor_runs(bouncer, tmp_path)
        during = app.writes
        time.sleep(LONG + 0.5)  # after: at least one more long statement per thread
    assert app.errors == []
    assert app.writes > during > 0 and app.long_runs >= APP_THREADS
    assert pg.sql("SELECT count(*) FROM app_writes")[0][0] - before == app.writes
    # what the application's transactions saw: never pgdoctor's read-only, timeouts, search_path, label
    defaults = ("off", "0", "0", '"$user", public', "0")
    assert {got[:-1] for got in app.seen} == {defaults}
    assert {got[-1] for got in app.seen} <= {"", "app1", "app2"}
    # afterwards, every server connection of the pool, seen through PgBouncer and directly
    assert set(server_connection_settings(pg, bouncer)) == {defaults}
    labels = pg.sql(
        "SELECT DISTINCT application_name FROM pg_stat_activity "
        "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
    )
    assert ("pgdoctor",) not in labels
    # and pgdoctor knew it was behind a pooler, in every command
    assert [d["server"]["via_pooler"] for d in docs] == [True] * len(docs)


def test_application_name_never_labels_other_clients(pg: Cluster) -> None:
    """PgBouncer re-SETs a client's startup application_name on the server connection, where it stays:
    pgdoctor sends none, and labels only its own transactions."""
    with running_pgbouncer(pg, pool_mode="transaction", pool_size=1) as b:
        result = run_cli("connections", "-d", b.dsn(), "-f", "json")
        assert result.returncode == 0, result.stderr
        (label,) = pg.sql(
            "SELECT application_name FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND pid <> pg_backend_pid() AND strpos(query, '/* pgdoctor */') > 0"
        )[0]
        assert label == ""  # pgdoctor's old server connection, idle in the pool
        with b.connect() as app:  # an application that sets no application_name gets that connection
            assert app.execute("SELECT current_setting('application_name')").fetchone() == ("",)
    pg.terminate_others()


def test_direct_connections_are_not_via_a_pooler(pg: Cluster) -> None:
    for dsn in (pg.dsn(), pg.dsn(tcp=True, password="pgdoctor-test-secret")):
        result = run_cli("connections", "-d", dsn, "-f", "json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["server"]["via_pooler"] is False
        text = run_cli("connections", "-d", dsn, "-f", "plain")
        assert "pooler" not in text.stdout


def test_the_report_says_what_a_pooler_means(pg: Cluster) -> None:
    with running_pgbouncer(pg, pool_mode="transaction", pool_size=2) as b:
        for command in (["connections"], ["locks"], ["slow-queries"], ["recommend", "--ram", "4GB"]):
            result = run_cli(*command, "-d", b.dsn(), "-f", "plain")
            assert result.returncode == 0, result.stderr
            flat = " ".join(result.stdout.split())
            assert "Through a pooler or proxy" in flat
            assert "are the pooler's server connections, not the applications" in flat
            assert "SHOW POOLS" in flat and "pgdoctor pgbouncer" in flat
    pg.terminate_others()


def test_a_full_pool_is_one_line_within_the_timeout(pg: Cluster) -> None:
    """Every server connection of the pool is held in a transaction: pgdoctor waits in PgBouncer's
    queue no longer than --timeout plus the margin, and says where it waited."""
    with running_pgbouncer(pg, pool_mode="transaction", pool_size=2) as b:
        held = [b.connect(autocommit=False) for _ in range(2)]
        for conn in held:
            conn.execute("SELECT 1")  # in a transaction: the server connection stays with it
        try:
            for command in (["connections"], ["slow-queries"], ["snapshot", "-o", "/dev/null"]):
                started = time.monotonic()
                result = run_cli(*command, "-d", b.dsn(), "--timeout", "2")
                elapsed = time.monotonic() - started
                assert result.returncode == ExitCode.CANNOT_CONNECT, result.stderr
                assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
                # known as a pooler before any read by PgBouncer's random cancel key, whose "pid" looks
                # like a backend's for 1 connection in 1,024: then the line says a pooler *may* be full
                assert "pooler" in result.stderr
                assert any(
                    said in result.stderr
                    for said in ("no server connection", "may have no free server connection")
                )
                assert "PostgreSQL's own port" in result.stderr and "SHOW POOLS" in result.stderr
                # 2 s timeout + 1 s margin, + the interpreter's start (generous: not a speed test)
                assert elapsed < 2 + 1 + 5, elapsed
                assert elapsed >= 2, elapsed  # it did wait for --timeout, not give up at once
        finally:
            for conn in held:
                conn.rollback()
                conn.close()
        result = run_cli("connections", "-d", b.dsn(), "-f", "json")
        assert result.returncode == 0, result.stderr
    pg.terminate_others()
