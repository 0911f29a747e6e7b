"""A server with every slot taken, reserved ones included: `sorry, too many clients already` for everyone.

pgdoctor says so in one line, and `connections --ps` reads who holds the slots from the backends'
process titles, without connecting. A second server runs on the same host and must not be mixed up
with the full one. Real servers, PostgreSQL 15 and 18.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from pgdoctor.errors import ExitCode
from tests.conftest import FIXTURES, run_cli
from tests.incidents import Sessions, wait_until
from tests.pgcluster import VERSIONS, Cluster

pytestmark = pytest.mark.server

MAX_CONNECTIONS = 8
APP_PASSWORD = "app-secret-pw"


@dataclass
class Full:
    pg: Cluster
    other: Cluster
    pids: dict[str, list[int]]  # what was opened, by what it is doing


def postmaster_pid(cluster: Cluster) -> int:
    return int((cluster.data / "postmaster.pid").read_text().splitlines()[0])


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.stderr.startswith("error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr


@pytest.fixture(scope="module", params=VERSIONS, ids=[f"pg{v}" for v in VERSIONS])
def full(request: pytest.FixtureRequest) -> Iterator[Full]:
    """max_connections = 8, none reserved, all 8 held:
    app@shop: 2 idle over TCP, 1 idle, 1 idle in transaction holding a lock, 1 aborted (socket);
    report: 1 running pg_sleep in postgres, 1 waiting on app's lock in shop; postgres: 1 idle.
    Next to it, a second server (no cluster_name, update_process_title off) with 2 idle sessions."""
    version: str = request.param
    pg = Cluster(
        version,
        settings={
            "max_connections": MAX_CONNECTIONS,
            "superuser_reserved_connections": 0,
            "cluster_name": f"'full{version}'",
        },
        preload=False,
    ).start()
    other = Cluster(version, settings={"update_process_title": "off"}, preload=False).start()
    sessions = Sessions(pg)
    other_sessions = Sessions(other)
    try:
        pg.sql(f"CREATE ROLE app LOGIN PASSWORD '{APP_PASSWORD}'")
        pg.sql("CREATE ROLE report LOGIN")
        pg.sql("CREATE DATABASE shop OWNER app")
        with pg.connect(user="app", dbname="shop") as conn:
            conn.execute("CREATE TABLE items (id int)")
        pg.sql("GRANT SELECT ON items TO report", dbname="shop")
        pids: dict[str, list[int]] = {}
        tcp = []
        for _ in range(2):
            conn = psycopg.connect(pg.dsn(user="app", dbname="shop", password=APP_PASSWORD), autocommit=True)
            conn.execute("SELECT 1")
            sessions.conns.append(conn)
            tcp.append(conn.info.backend_pid)
        pids["tcp_idle"] = tcp
        pids["idle"] = sessions.idle("web", 1, user="app", dbname="shop")
        pids["holder"] = [
            sessions.idle_in_transaction(
                "web", "LOCK TABLE items IN ACCESS EXCLUSIVE MODE", user="app", dbname="shop"
            )
        ]
        pids["aborted"] = [sessions.aborted("web", user="app", dbname="shop")]
        pids["sleeping"] = [sessions.send("reports", "SELECT pg_sleep(600)", user="report")]
        pids["waiting"] = [
            sessions.send("reports", "SELECT count(*) FROM items", user="report", dbname="shop")
        ]
        # the 8th and last slot: the superuser session that checks the premises, then stays idle
        admin = sessions.open("admin")
        pids["superuser_idle"] = [admin.info.backend_pid]

        def states() -> list[tuple[Any, ...]]:
            query = (
                "SELECT pid, state, wait_event_type FROM pg_stat_activity WHERE pid = ANY(%s) ORDER BY pid"
            )
            return admin.execute(query, [pids["sleeping"] + pids["waiting"]]).fetchall()

        expected = sorted(
            [(pids["sleeping"][0], "active", "Timeout"), (pids["waiting"][0], "active", "Lock")]
        )
        wait_until(
            lambda: sorted(states()) == expected, 20, "pg_sleep to run and the SELECT to wait on the lock"
        )
        admin.execute("SELECT 1")
        other_pids = other_sessions.idle("elsewhere", 2)
        with pytest.raises(psycopg.OperationalError, match="too many clients already"):
            psycopg.connect(pg.dsn(), connect_timeout=5).close()
        yield Full(pg, other, {**pids, "other": other_pids})
    finally:
        # no slot is free to end them through SQL: close our ends and stop the server
        for conn in sessions.conns:
            conn.close()
        for raw in sessions.raw:
            raw.finish()
        other_sessions.close()
        other.stop()
        pg.stop()


def ps_json(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run_cli("connections", "--ps", "-f", "json", *args, env=env)
    assert result.returncode == 0, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def groups(doc: dict[str, Any]) -> dict[str, dict[str, int]]:
    classes = ("active", "idle", "idle_in_transaction", "idle_in_transaction_aborted", "blocked", "other")
    return {g["key"]: {"total": g["total"], **{c: g[c] for c in classes if g[c]}} for g in doc["groups"]}


@pytest.mark.parametrize("user", ["postgres", "app"])
def test_too_many_clients_is_told_apart_and_points_to_ps(full: Full, user: str) -> None:
    result = run_cli("connections", "-d", full.pg.dsn(user=user, dbname="shop"))
    assert result.returncode == ExitCode.CANNOT_CONNECT
    line = one_error_line(result)
    assert "every connection slot is in use, the reserved ones too" in line
    assert "superuser or not" in line and "pgdoctor connections --ps" in line
    assert "too many clients already" in line  # what the server said
    assert "connect as a superuser" not in line and "pg_use_reserved_connections" not in line


def test_ps_counts_by_user(full: Full) -> None:
    doc = ps_json("-d", full.pg.dsn(user="app", dbname="shop", password=APP_PASSWORD))
    assert doc["source"] == "ps" and doc["group_by"] == "user"
    assert groups(doc) == {
        "app": {"total": 5, "idle": 3, "idle_in_transaction": 1, "idle_in_transaction_aborted": 1},
        "report": {"total": 2, "active": 1, "blocked": 1},
        "postgres": {"total": 1, "idle": 1},
    }
    classes = {s["pid"]: s["class"] for s in doc["sessions"]}
    expected = {
        **dict.fromkeys(full.pids["tcp_idle"] + full.pids["idle"] + full.pids["superuser_idle"], "idle"),
        full.pids["holder"][0]: "idle_in_transaction",
        full.pids["aborted"][0]: "idle_in_transaction_aborted",
        full.pids["sleeping"][0]: "active",
        full.pids["waiting"][0]: "blocked",
    }
    assert classes == expected
    assert not set(full.pids["other"]) & set(classes)  # the second server's sessions are not in it


def test_ps_counts_by_database_and_client(full: Full) -> None:
    by_db = ps_json("-d", full.pg.dsn(), "--by", "database")
    assert groups(by_db) == {
        "shop": {
            "total": 6,
            "idle": 3,
            "idle_in_transaction": 1,
            "idle_in_transaction_aborted": 1,
            "blocked": 1,
        },
        "postgres": {"total": 2, "active": 1, "idle": 1},
    }
    by_client = ps_json("-d", full.pg.dsn(), "--by", "client")
    assert groups(by_client) == {
        "local socket": {
            "total": 6,
            "active": 1,
            "idle": 2,
            "idle_in_transaction": 1,
            "idle_in_transaction_aborted": 1,
            "blocked": 1,
        },
        "127.0.0.1": {"total": 2, "idle": 2},
    }


def test_ps_capacity_and_findings(full: Full) -> None:
    doc = ps_json("-d", full.pg.dsn())
    assert doc["capacity"] == {
        "max_connections": MAX_CONNECTIONS,
        "superuser_reserved_connections": 0,
        "reserved_connections": 0,
        "usable": MAX_CONNECTIONS,
        "clients": MAX_CONNECTIONS,
        "usage_pct": 100.0,
        "slots_left": 0,
    }
    assert doc["postmaster"]["pid"] == postmaster_pid(full.pg)
    assert doc["postmaster"]["port"] == full.pg.port
    assert doc["postmaster"]["data_dir"] == str(full.pg.data)
    assert doc["postmaster"]["cluster_name"] == f"full{full.pg.version}"
    assert doc["server"]["version_num"] == int(full.pg.version) * 10000
    findings = {f["code"]: f for f in doc["findings"]}
    assert findings["capacity"]["severity"] == "critical"
    assert "too many clients already" in findings["capacity"]["message"]
    assert "keep superuser_reserved_connections > 0" in findings["capacity"]["advice"]
    assert findings["blocked"]["pids"] == full.pids["waiting"]
    assert findings["idle_in_transaction"]["pids"] == sorted(full.pids["holder"] + full.pids["aborted"])
    assert {s["backend_type"] for s in doc["background"]} >= {
        "checkpointer",
        "walwriter",
        "autovacuum launcher",
    }


def test_ps_text_says_it_read_the_process_list(full: Full) -> None:
    result = run_cli("connections", "--ps", "-d", full.pg.dsn(), "-f", "plain")
    assert result.returncode == 0, result.stderr
    assert "(process list)" in result.stdout.splitlines()[0]
    assert (
        f"Read from the process list (postmaster pid {postmaster_pid(full.pg)}, port {full.pg.port}"
        in result.stdout
    )
    assert "Capacity: 8 of 8 usable slots in use (100%), 0 left" in result.stdout
    csv = run_cli("connections", "--ps", "-d", full.pg.dsn(), "-f", "csv", "--sessions")
    assert csv.returncode == 0, csv.stderr
    assert csv.stdout.splitlines()[0].startswith("pid,application,user,database,client,class")
    assert len(csv.stdout.splitlines()) == 1 + MAX_CONNECTIONS


def test_ps_never_connects(full: Full) -> None:
    """A host that does not even resolve: only the port of the DSN is used."""
    doc = ps_json("-d", f"host=no-such-host.invalid port={full.pg.port} user=app")
    assert doc["postmaster"]["pid"] == postmaster_pid(full.pg)
    assert doc["capacity"]["clients"] == MAX_CONNECTIONS


def test_ps_picks_the_server_by_pgport_and_by_data_dir(full: Full) -> None:
    by_env = ps_json(env={"PGPORT": str(full.pg.port)})
    by_dir = ps_json("--data-dir", str(full.pg.data))
    assert by_env["postmaster"]["pid"] == by_dir["postmaster"]["pid"] == postmaster_pid(full.pg)
    assert groups(by_env) == groups(by_dir)
    assert by_dir["capacity"]["clients"] == MAX_CONNECTIONS


def test_ps_second_server_by_port_and_data_dir(full: Full) -> None:
    """The neighbour: 2 sessions, update_process_title off (titles without state)."""
    for args in (("-d", full.other.dsn()), ("--data-dir", str(full.other.data))):
        doc = ps_json(*args)
        assert doc["postmaster"]["pid"] == postmaster_pid(full.other)
        assert doc["postmaster"]["cluster_name"] is None
        assert sorted(s["pid"] for s in doc["sessions"]) == sorted(full.pids["other"])
        assert groups(doc) == {"postgres": {"total": 2, "other": 2}}
        assert doc["capacity"]["max_connections"] == 100 and doc["capacity"]["clients"] == 2
        titles = next(f for f in doc["findings"] if f["code"] == "process_titles")
        assert "update_process_title is off" in titles["message"]


def test_ps_no_server_on_that_port(full: Full) -> None:
    taken = {full.pg.port, full.other.port}
    port = next(p for p in range(1025, 65535) if p not in taken)
    result = run_cli("connections", "--ps", "-d", f"port={port}")
    assert result.returncode == ExitCode.CANNOT_CONNECT
    line = one_error_line(result)
    assert f"no PostgreSQL server listens on port {port}" in line
    assert str(full.pg.port) in line  # the ports it found


def test_ps_data_dir_without_server(tmp_path: Any) -> None:
    result = run_cli("connections", "--ps", "--data-dir", str(tmp_path))
    assert result.returncode == ExitCode.CANNOT_CONNECT
    assert "no server is running on data directory" in one_error_line(result)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--ps", "--snapshot", str(FIXTURES / "incident-pg18.json")), "either --ps or --snapshot"),
        (("--ps", "--by", "application"), "no application_name"),
        (("--data-dir", "/tmp"), "--data-dir goes with --ps"),
    ],
)
def test_ps_usage_errors(args: tuple[str, ...], message: str) -> None:
    result = run_cli("connections", *args)
    assert result.returncode == ExitCode.USAGE
    assert message in one_error_line(result)
