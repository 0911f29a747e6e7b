"""When things go wrong: a full server, bad credentials, missing grants, timeouts, Ctrl-C. Real servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import sqlalchemy

from pgdoctor.db import connect
from pgdoctor.errors import ExitCode, PgDoctorError
from tests.conftest import ROOT, run_cli
from tests.incidents import Sessions, ensure_role, wait_until
from tests.pgcluster import PASSWORD, VERSIONS, Cluster, free_port

pytestmark = pytest.mark.server


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.stderr.startswith("error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


@pytest.fixture(scope="module", params=VERSIONS, ids=[f"pg{v}" for v in VERSIONS])
def full(request: pytest.FixtureRequest) -> Iterator[tuple[Cluster, list[int]]]:
    """A small server whose ordinary slots are all taken by role `app`."""
    version: str = request.param
    settings = {"max_connections": 8, "superuser_reserved_connections": 2}
    if int(version) >= 16:
        settings["reserved_connections"] = 2
    pg = Cluster(version, settings=settings).start()
    pg.sql("CREATE ROLE app LOGIN")
    if int(version) >= 16:
        pg.sql("CREATE ROLE ops LOGIN IN ROLE pg_use_reserved_connections, pg_monitor")
    usable = 8 - 2 - (2 if int(version) >= 16 else 0)
    sessions = Sessions(pg)
    pids = sessions.idle("web", usable, user="app")
    try:
        yield pg, pids
    finally:
        sessions.close()
        pg.stop()


def test_full_server_refuses_ordinary_role_with_an_explanation(full: tuple[Cluster, list[int]]) -> None:
    pg, _ = full
    result = run_cli("connections", "-d", pg.dsn(user="app"))
    assert result.returncode == ExitCode.CANNOT_CONNECT
    line = one_error_line(result)
    assert "no ordinary connection slot left" in line
    assert "superuser_reserved_connections" in line and "pg_use_reserved_connections" in line


def test_reserved_slots_keep_their_advice_not_the_too_many_clients_one(
    full: tuple[Cluster, list[int]],
) -> None:
    """Only ordinary slots are gone: a superuser (or a pg_use_reserved_connections role) still gets in,
    so that is the advice; `--ps` is for when every slot is gone."""
    pg, _ = full
    line = one_error_line(run_cli("connections", "-d", pg.dsn(user="app")))
    assert "remaining connection slots are reserved" in line and "connect as a superuser" in line
    assert "--ps" not in line and "every connection slot is in use" not in line


def test_superuser_slots_only_advice_leaves_out_pg_use_reserved_connections(
    full: tuple[Cluster, list[int]],
) -> None:
    """PostgreSQL 16+: with the reserved_connections slots taken too, only a superuser gets in."""
    pg, _ = full
    if int(pg.version) < 16:
        pytest.skip("reserved_connections and pg_use_reserved_connections exist from PostgreSQL 16")
    # ops takes the 2 reserved_connections slots: what is left (2) is for superusers only
    held = [psycopg.connect(pg.dsn(user="ops"), autocommit=True) for _ in range(2)]
    try:
        result = run_cli("connections", "-d", pg.dsn(user="ops"))
        assert result.returncode == ExitCode.CANNOT_CONNECT
        line = one_error_line(result)
        assert "reserved for roles with the SUPERUSER attribute" in line  # what the server said
        assert "only its superuser_reserved_connections slots left" in line
        assert "connect as a superuser" in line and "pg_use_reserved_connections" not in line
    finally:
        for conn in held:
            conn.close()
        wait_until(
            lambda: not pg.sql("SELECT 1 FROM pg_stat_activity WHERE usename = 'ops'"),
            20,
            "ops sessions to end",
        )


def test_full_server_superuser_gets_in_and_sees_saturation(full: tuple[Cluster, list[int]]) -> None:
    pg, pids = full
    result = run_cli("connections", "-d", pg.dsn(), "-f", "json", "--fail-on", "critical")
    assert result.returncode == ExitCode.FINDINGS, result.stderr
    doc = json.loads(result.stdout)
    assert doc["capacity"]["clients"] == doc["capacity"]["usable"] == len(pids)
    assert doc["capacity"]["slots_left"] == 0
    capacity = next(f for f in doc["findings"] if f["code"] == "capacity")
    assert capacity["severity"] == "critical" and "no ordinary slot left" in capacity["message"]


def test_full_server_role_with_pg_use_reserved_connections_gets_in(full: tuple[Cluster, list[int]]) -> None:
    pg, pids = full
    if int(pg.version) < 16:
        pytest.skip("reserved_connections and pg_use_reserved_connections exist from PostgreSQL 16")
    result = run_cli("connections", "-d", pg.dsn(user="ops"), "-f", "json")
    assert result.returncode == 0, result.stderr
    cap = json.loads(result.stdout)["capacity"]
    assert (cap["reserved_connections"], cap["usable"], cap["clients"]) == (2, 4, len(pids))


def test_refused_connection() -> None:
    result = run_cli("connections", "-d", f"host=127.0.0.1 port={free_port()} connect_timeout=3")
    assert result.returncode == ExitCode.CANNOT_CONNECT
    assert "refused the connection" in one_error_line(result)


def test_unknown_host() -> None:
    result = run_cli("connections", "-d", "host=no-such-host.invalid connect_timeout=3")
    assert result.returncode == ExitCode.CANNOT_CONNECT
    assert "unknown host" in one_error_line(result)


@pytest.mark.parametrize("form", ["conninfo", "uri", "sqlalchemy", "env"])
def test_wrong_password_is_never_echoed(pg: Cluster, form: str) -> None:
    secret = "Wr0ng-s3cret-pw"
    dsn = {
        "conninfo": pg.dsn(password=secret),
        "uri": f"postgresql://postgres:{secret}@127.0.0.1:{pg.port}/postgres",
        "sqlalchemy": f"postgresql+psycopg2://postgres:{secret}@127.0.0.1:{pg.port}/postgres",
        "env": "",
    }[form]
    env = {"PGPASSWORD": secret, "PGHOST": "127.0.0.1", "PGPORT": str(pg.port), "PGUSER": "postgres"}
    args = ("connections",) if form == "env" else ("connections", "-d", dsn)
    result = run_cli(*args, env=env if form == "env" else None)
    assert result.returncode == ExitCode.CANNOT_CONNECT
    line = one_error_line(result)
    assert "authentication failed" in line
    assert secret not in result.stderr + result.stdout


def test_right_password_over_tcp_and_database_url(pg: Cluster) -> None:
    url = f"postgresql+asyncpg://postgres:{PASSWORD}@127.0.0.1:{pg.port}/postgres"
    result = run_cli("connections", "-f", "json", env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["command"] == "connections"


def test_missing_database(pg: Cluster) -> None:
    result = run_cli("connections", "-d", pg.dsn(dbname="no_such_db"))
    assert result.returncode == ExitCode.CANNOT_CONNECT
    assert 'database "no_such_db" does not exist' in one_error_line(result)


def test_role_without_pg_read_all_stats_sees_what_it_can(pg: Cluster, sessions: Sessions) -> None:
    ensure_role(pg, "limited")
    others = sessions.idle("billing", 2)
    mine = sessions.idle("limited_app", 1, user="limited")
    result = run_cli("connections", "-d", pg.dsn(user="limited"), "-f", "json")
    assert result.returncode == ExitCode.PRIVILEGE, result.stderr
    doc = json.loads(result.stdout)
    by_pid = {s["pid"]: s for s in doc["sessions"]}
    assert by_pid[mine[0]]["class"] == "idle"  # its own sessions are fully visible
    assert all(
        by_pid[p]["class"] == "other" and by_pid[p]["query"] == "<insufficient privilege>" for p in others
    )
    finding = next(f for f in doc["findings"] if f["code"] == "insufficient_privilege")
    assert "GRANT pg_read_all_stats TO limited" in finding["advice"]
    assert set(others) <= set(finding["pids"])
    pg.sql("GRANT pg_monitor TO limited")
    try:
        granted = run_cli("connections", "-d", pg.dsn(user="limited"), "-f", "json")
        assert granted.returncode == 0
        assert {s["class"] for s in json.loads(granted.stdout)["sessions"]} == {"idle"}
    finally:
        pg.sql("REVOKE pg_monitor FROM limited")


@dataclass(frozen=True)
class Value:
    """One column named `value`: a row type for Database.rows in these tests."""

    value: Any


def test_never_waits_behind_a_lock(pg: Cluster) -> None:
    """Someone holds ACCESS EXCLUSIVE on a table: pgdoctor's session gives up after lock_timeout."""
    pg.sql("CREATE TABLE IF NOT EXISTS busy (id int)")
    with pg.connect(autocommit=False) as blocker:
        blocker.execute("LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")
        with connect(pg.dsn(), timeout_s=30) as db:
            started = time.monotonic()
            with pytest.raises(PgDoctorError) as caught:
                db.rows("SELECT count(*) AS value FROM public.busy", Value)  # search_path is pg_catalog only
            elapsed = time.monotonic() - started
        blocker.rollback()
    assert caught.value.exit_code == ExitCode.QUERY_FAILED
    assert "lock_timeout" in caught.value.message
    assert elapsed < 10  # lock_timeout (1 s), not the 30 s statement_timeout


def test_statement_timeout_is_one_clear_error(pg: Cluster) -> None:
    names = ["transaction_read_only", "lock_timeout", "statement_timeout", "search_path", "application_name"]
    settings_sql = (
        "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) AS value FROM pg_settings "
        "WHERE name = ANY(%s)"
    )
    with connect(pg.dsn(), timeout_s=0.3) as db:
        with pytest.raises(PgDoctorError) as caught:
            db.rows("SELECT pg_sleep(5) AS value", Value)
        assert caught.value.exit_code == ExitCode.QUERY_FAILED
        assert "--timeout 0.3s" in caught.value.message
        # each read runs with pgdoctor's settings in force ...
        (inside,) = (r.value for r in db.rows(settings_sql, Value, [names]))
        # ... and they end with its transaction: the session keeps none of them
        after = db.conn.execute(settings_sql, [names]).fetchone()
    assert inside == (
        "application_name=pgdoctor, lock_timeout=300, search_path=pg_catalog, pg_temp, "
        "statement_timeout=300, transaction_read_only=on"
    )
    assert after == (
        'application_name=, lock_timeout=0, search_path="$user", public, '
        "statement_timeout=0, transaction_read_only=off",
    )


def test_pgdoctor_session_is_read_only(pg: Cluster) -> None:
    with connect(pg.dsn()) as db, pytest.raises(PgDoctorError, match="read-only transaction"):
        db.rows("CREATE TABLE pgdoctor_must_not_write (id int)", Value)


def test_ctrl_c_is_one_line(pg: Cluster) -> None:
    with pg.connect(autocommit=False) as blocker:
        blocker.execute("LOCK TABLE pg_catalog.pg_database IN ACCESS EXCLUSIVE MODE")  # stalls new sessions
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "pgdoctor", "connections", "-d", pg.dsn(), "--timeout", "30"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        wait_until(
            lambda: bool(pg_waiters(blocker)), timeout=20, what="pgdoctor to wait on the locked catalog"
        )
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        blocker.rollback()
    assert proc.returncode == ExitCode.INTERRUPTED
    assert err == "error: interrupted\n"
    assert out == ""


def pg_waiters(conn: psycopg.Connection[tuple[object, ...]]) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT pid FROM pg_locks WHERE NOT granted AND relation = 'pg_catalog.pg_database'::regclass"
    ).fetchall()


def test_exhausted_sqlalchemy_queuepool_shows_up(pg: Cluster) -> None:
    """The app's error is `QueuePool limit of size 5 overflow 10 reached`; pgdoctor shows its 15 sessions."""
    url = f"postgresql+psycopg://postgres@/postgres?host={pg.socket_dir}&port={pg.port}"
    engine = sqlalchemy.create_engine(
        url, pool_size=5, max_overflow=10, pool_timeout=0.5, connect_args={"application_name": "etl_worker"}
    )
    held = []
    try:
        for _ in range(15):
            conn = engine.connect()
            conn.execute(sqlalchemy.text("SELECT 1"))
            held.append(conn)
        with pytest.raises(
            sqlalchemy.exc.TimeoutError, match="QueuePool limit of size 5 overflow 10 reached"
        ):
            engine.connect()
        result = run_cli("connections", "-d", pg.dsn(), "-f", "json")
        doc = json.loads(result.stdout)
        group = next(g for g in doc["groups"] if g["key"] == "etl_worker")
        # SQLAlchemy 2 autobegins: a checked-out connection that ran a query sits idle in a transaction
        assert group["total"] == 15
        assert group["idle_in_transaction"] + group["idle"] == 15
    finally:
        for conn in held:
            conn.close()
        engine.dispose()
