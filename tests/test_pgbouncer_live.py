"""`pgdoctor pgbouncer` against a real PgBouncer (Debian's 1.18), transaction and session mode, in front of
PostgreSQL 15 and 18: clients queue behind a pool of 2 held by idle transactions; a healthy pool beside it.

One PgBouncer and one incident per (server, pool mode), shared by the read-only tests of this module.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import FIXTURES, run_cli
from tests.pgbouncer import PgBouncer, available, running_pgbouncer
from tests.pgcluster import SUPERUSER, Cluster
from tests.promtool import check_metrics, needs_promtool, one, parse, run_rule_tests, values

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(not available(), reason="PgBouncer is not installed (apt-get install pgbouncer)"),
]

POOL = 2
HOLDERS = 6  # clients that each want a transaction: POOL get a server, the others queue
HEALTHY_DB = "template1"  # a second pool (template1/postgres): one quick query, then idle
XACT_WARN = 1.0  # --server-xact-warn for the tests; the holders' transactions are older (made true below)


@dataclass
class Incident:
    pg: Cluster
    bouncer: PgBouncer
    mode: str
    release: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def admin_dsn(self) -> str:
        return self.bouncer.dsn(dbname="pgbouncer")

    @property
    def postgres_dsn(self) -> str:
        return f"host={self.pg.socket_dir} port={self.pg.port} user={SUPERUSER} dbname=postgres"

    def hold(self, i: int) -> None:
        try:
            with self.bouncer.connect(application_name="holder") as conn:
                conn.execute("BEGIN")
                conn.execute("SELECT 1")  # idle in transaction from here: the application "works"
                self.release.wait(120)
                conn.execute("COMMIT")
        except Exception as exc:  # reported by the fixture's teardown
            self.errors.append(f"holder {i}: {exc}")

    def pool(self, database: str = "postgres") -> dict[str, Any]:
        return next(p for p in self.bouncer.admin("SHOW POOLS") if p["database"] == database)


def wait_for(check: Any, what: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module", params=["transaction", "session"])
def incident(request: pytest.FixtureRequest, pg: Cluster) -> Iterator[Incident]:
    with running_pgbouncer(pg, pool_mode=request.param, pool_size=POOL) as bouncer:
        inc = Incident(pg, bouncer, request.param)
        healthy = bouncer.connect(dbname=HEALTHY_DB, application_name="healthy")
        healthy.execute("SELECT 1")
        inc.threads = [threading.Thread(target=inc.hold, args=(i,), daemon=True) for i in range(HOLDERS)]
        for t in inc.threads:
            t.start()
        try:
            wait_for(lambda: inc.pool()["cl_waiting"] == HOLDERS - POOL, "the queue")
            # the premise of server_transactions_long: the held transactions are older than XACT_WARN
            # (PgBouncer's request_time has a resolution of one second: wait past two)
            time.sleep(XACT_WARN + 1.5)
            yield inc
        finally:
            inc.release.set()
            for t in inc.threads:
                t.join(30)
            healthy.close()
    assert not inc.errors, inc.errors


def run_json(inc: Incident, *extra: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """SHOW POOLS, pgdoctor's JSON, SHOW POOLS again: the report is read between the two."""
    before = inc.pool()
    result = run_cli(
        "pgbouncer", "--dsn", inc.admin_dsn, "-f", "json", "--server-xact-warn", str(XACT_WARN), *extra
    )
    after = inc.pool()
    assert result.returncode == 0, result.stderr
    return before, json.loads(result.stdout), after


def test_the_report_matches_show_pools(incident: Incident) -> None:
    before, doc, after = run_json(incident, "--postgres-dsn", incident.postgres_dsn)
    assert doc["server"]["version"].startswith("PgBouncer ")
    pools = {(p["database"], p["user"]): p for p in doc["pools"]}
    assert ("pgbouncer", "pgbouncer") not in pools  # the console is not a pool of the application
    pool = pools[("postgres", SUPERUSER)]
    for key in ("cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_used"):
        assert before[key] == pool[key] == after[key], key
    assert pool["cl_waiting"] == HOLDERS - POOL and pool["sv_active"] == POOL
    assert pool["pool_mode"] == incident.mode and pool["pool_size"] == POOL and pool["reserve_pool"] == 0
    low = before["maxwait"] + before["maxwait_us"] / 1e6
    high = after["maxwait"] + after["maxwait_us"] / 1e6
    assert low <= pool["maxwait_s"] <= high
    assert doc["config"]["max_client_conn"] == "200" and doc["config"]["default_pool_size"] == str(POOL)
    holders = next(g for g in doc["clients"] if g["application_name"] == "holder")
    assert (holders["total"], holders["waiting"], holders["active"]) == (HOLDERS, HOLDERS - POOL, POOL)
    assert doc["postgres"]["usable"] > 0


def test_findings_of_the_queue_and_none_for_the_healthy_pool(incident: Incident) -> None:
    _, doc, _ = run_json(incident, "--postgres-dsn", incident.postgres_dsn)
    codes = {(f["code"], f["subject"]) for f in doc["findings"]}
    subject = f"postgres/{SUPERUSER}"
    assert ("clients_waiting", subject) in codes
    assert ("pool_full", subject) in codes
    assert ("server_transactions_long", subject) in codes
    assert (("session_mode_many_clients", subject) in codes) == (incident.mode == "session")
    assert not [f for f in doc["findings"] if f["subject"] == f"{HEALTHY_DB}/{SUPERUSER}"]
    long = next(f for f in doc["findings"] if f["code"] == "server_transactions_long")
    servers = [s for s in incident.bouncer.admin("SHOW SERVERS") if s["database"] == "postgres"]
    assert sorted(long["pids"]) == sorted(s["remote_pid"] for s in servers if s["state"] == "active")
    assert f"{POOL} of them idle in transaction" in long["message"]
    if incident.mode == "transaction":
        assert "the fix is in the application, not a bigger pool" in long["advice"]
    # every active server connection is mapped to the client it serves and to its backend
    held = [s for s in doc["servers"] if s["pool"] == subject and s["state"] == "active"]
    assert len(held) == POOL
    assert all(s["client"]["application_name"] == "holder" for s in held)
    assert all(s["backend_state"] == "idle in transaction" and s["xact_age_s"] >= XACT_WARN for s in held)


def test_without_postgres_dsn(incident: Incident) -> None:
    _, doc, _ = run_json(incident)
    codes = {f["code"] for f in doc["findings"]}
    assert {"clients_waiting", "pool_full"} <= codes
    assert doc["postgres"] is None
    # a transaction-mode server linked to a client is in a transaction: its age since the last request
    # is a lower bound; in session mode a linked server says nothing about transactions
    assert ("server_transactions_long" in codes) == (incident.mode == "transaction")


def test_plain_output_and_fail_on(incident: Incident) -> None:
    result = run_cli("pgbouncer", "--dsn", incident.admin_dsn, "-f", "plain", "--fail-on", "warning")
    assert result.returncode == 1, result.stderr
    assert "Pools" in result.stdout and f"postgres/{SUPERUSER}" in result.stdout
    assert "clients_waiting" in result.stdout and "holder" in result.stdout
    csv = run_cli("pgbouncer", "--dsn", incident.admin_dsn, "-f", "csv")
    assert csv.returncode == 0 and csv.stdout.splitlines()[0].startswith("pool (database/user),mode")


def test_snapshot_round_trip(incident: Incident, tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    saved = run_cli(
        "snapshot", "--dsn", incident.postgres_dsn, "--pgbouncer-dsn", incident.admin_dsn, "-o", str(path)
    )
    assert saved.returncode == 0, saved.stderr
    assert "pgbouncer" in saved.stderr
    offline = run_cli(
        "pgbouncer", "--snapshot", str(path), "-f", "json", "--server-xact-warn", str(XACT_WARN)
    )
    assert offline.returncode == 0, offline.stderr
    doc = json.loads(offline.stdout)
    pool = next(p for p in doc["pools"] if p["database"] == "postgres")
    assert (pool["cl_waiting"], pool["sv_active"]) == (HOLDERS - POOL, POOL)
    assert doc["postgres"] is not None  # the server of the snapshot's --dsn is the one behind PgBouncer
    assert "server_transactions_long" in {f["code"] for f in doc["findings"]}
    assert run_cli("connections", "--snapshot", str(path)).returncode == 0


class Recorder:
    """A TCP relay between pgdoctor and PgBouncer that records every message pgdoctor sends."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sent = bytearray()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        client, _ = self.listener.accept()
        upstream = socket.create_connection(("127.0.0.1", self.target))

        def pipe(src: socket.socket, dst: socket.socket, record: bool) -> None:
            while data := src.recv(65536):
                if record:
                    self.sent += data
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)

        back = threading.Thread(target=pipe, args=(upstream, client, False), daemon=True)
        back.start()
        with contextlib.suppress(OSError):
            pipe(client, upstream, True)
        back.join(10)

    def messages(self) -> list[tuple[str, bytes]]:
        """(type, body) of every message after the startup packet."""
        data = bytes(self.sent)
        pos = 0
        while True:  # untyped packets: SSLRequest / GSSENCRequest (answered 'N'), then the startup packet
            length, code = struct.unpack("!II", data[pos : pos + 8])
            pos += length
            if code not in (80877103, 80877104):
                break
        out = []
        while pos < len(data):
            kind = chr(data[pos])
            (length,) = struct.unpack("!I", data[pos + 1 : pos + 5])
            out.append((kind, data[pos + 5 : pos + 1 + length]))
            pos += 1 + length
        return out


def test_pgdoctor_sends_only_show(incident: Incident) -> None:
    relay = Recorder(incident.bouncer.port)
    dsn = f"host=127.0.0.1 port={relay.port} user={SUPERUSER} dbname=pgbouncer"
    result = run_cli("pgbouncer", "--dsn", dsn, "-f", "json")
    assert result.returncode == 0, result.stderr
    relay.thread.join(10)
    messages = relay.messages()
    queries = [body.rstrip(b"\0").decode() for kind, body in messages if kind == "Q"]
    assert {kind for kind, _ in messages} <= {"Q", "X"}  # simple query protocol only, then Terminate
    assert queries and all(q.startswith("SHOW ") for q in queries), queries
    assert sorted(q.split()[1] for q in queries) == sorted(
        ["VERSION", "POOLS", "DATABASES", "CLIENTS", "SERVERS", "CONFIG", "STATS", "LISTS"]
    )


def test_bad_targets_are_one_line(incident: Incident) -> None:
    cases = [
        (incident.bouncer.dsn(dbname="postgres"), 2, "not PgBouncer's admin console"),
        (incident.bouncer.dsn(dbname="nosuchdb"), 3, "cannot connect"),
        ("host=127.0.0.1 port=1 user=x password=hunter2secret dbname=pgbouncer", 3, "refused"),
        ("host=127.0.0.1 port=notaport", 2, "invalid connection string"),
    ]
    for dsn, code, text in cases:
        result = run_cli("pgbouncer", "--dsn", dsn)
        assert result.returncode == code, (dsn, result.stderr)
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
        assert text in result.stderr and "Traceback" not in result.stderr
        assert "hunter2secret" not in result.stderr


def test_a_snapshot_without_pgbouncer_data() -> None:
    result = run_cli("pgbouncer", "--snapshot", str(FIXTURES / "incident-pg15.json"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "has no 'pgbouncer' data" in result.stderr


def test_a_client_of_the_console_is_no_pool_client(incident: Incident) -> None:
    # pgdoctor's own console connection is left out of the clients; another console client is not
    with psycopg.connect(incident.admin_dsn, autocommit=True) as other:
        _, doc, _ = run_json(incident)
        assert other.info.backend_pid
    assert doc["clients_total"] == HOLDERS + 2  # the holders, the healthy client and the other console


def test_connections_maps_backends_to_pgbouncer_clients(incident: Incident) -> None:
    """Three layers: each backend that is a PgBouncer server connection, pid by pid, with its client."""
    servers = incident.bouncer.admin("SHOW SERVERS")
    clients = {c["ptr"]: c for c in incident.bouncer.admin("SHOW CLIENTS")}
    result = run_cli(
        "connections", "--dsn", incident.postgres_dsn, "--pgbouncer-dsn", incident.admin_dsn, "-f", "json"
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert servers == incident.bouncer.admin("SHOW SERVERS")  # the same moment: nothing moved meanwhile
    sessions = {s["pid"]: s for s in doc["sessions"]}
    assert len(servers) == POOL + 1  # the holders' pool and the healthy pool's one
    for server in servers:
        via = sessions[server["remote_pid"]]["via_pgbouncer"]
        assert via["pool"] == f"{server['database']}/{server['user']}"
        client = clients.get(server["link"]) if server["link"] else None
        if client is None:
            assert via["client_addr"] is None and via["application_name"] is None
        else:
            assert (via["client_addr"], via["client_port"]) == (client["addr"], client["port"])
            assert via["application_name"] == client["application_name"]
    pooled = {s["remote_pid"] for s in servers}
    assert all(s["via_pgbouncer"] is None for s in doc["sessions"] if s["pid"] not in pooled)
    groups = {g["key"]: g["total"] for g in doc["groups"]}
    assert groups["holder (via pgbouncer)"] == POOL
    if incident.mode == "session":  # the healthy client keeps its server connection
        assert groups["healthy (via pgbouncer)"] == 1
    else:  # between its transactions the healthy pool's server connection is the pooler's
        assert groups["pgbouncer (idle server connection)"] == 1


@needs_promtool
def test_openmetrics_of_the_queue(incident: Incident) -> None:
    """--format openmetrics: promtool accepts it, each pool's cl_waiting/cl_active/sv_active are SHOW POOLS'
    (read before and after), the waiting holders by application; the shipped rules fed this output fire
    PgBouncerClientsWaiting for the queued pool alone."""
    before = incident.pool()
    result = run_cli("pgbouncer", "--dsn", incident.admin_dsn, "-f", "openmetrics")
    after = incident.pool()
    assert result.returncode == 0, result.stderr
    check_metrics(result.stdout)
    series = parse(result.stdout)
    pool = {"database": "postgres", "user": SUPERUSER}
    assert one(series, "pgdoctor_pgbouncer_pool_clients", **pool, state="waiting") == HOLDERS - POOL
    assert one(series, "pgdoctor_pgbouncer_pool_clients", **pool, state="active") == POOL
    assert one(series, "pgdoctor_pgbouncer_pool_servers", **pool, state="active") == POOL
    assert one(series, "pgdoctor_pgbouncer_pool_size", **pool) == POOL
    low, high = (p["maxwait"] + p["maxwait_us"] / 1e6 for p in (before, after))
    assert 0 < low <= one(series, "pgdoctor_pgbouncer_pool_maxwait_seconds", **pool) <= high
    healthy = {"database": HEALTHY_DB, "user": SUPERUSER}
    assert one(series, "pgdoctor_pgbouncer_pool_clients", **healthy, state="waiting") == 0
    assert one(series, "pgdoctor_pgbouncer_application_clients", application="holder", state="waiting") == 4
    assert ("clients_waiting", f"postgres/{SUPERUSER}") in {
        (dict(k)["code"], dict(k)["subject"]) for k in values(series, "pgdoctor_finding")
    }
    firing = {"alertname": "PgBouncerClientsWaiting", "instance": "bouncer", **pool}
    run_rule_tests({"bouncer": result.stdout}, [firing])
    # connections --pgbouncer-dsn: the backends as PostgreSQL counts them, PgBouncer's server connections
    three = run_cli(
        "connections", "-d", incident.postgres_dsn, "--pgbouncer-dsn", incident.admin_dsn, "-f", "openmetrics"
    )
    assert three.returncode == 0, three.stderr
    check_metrics(three.stdout)
    assert one(parse(three.stdout), "pgdoctor_client_connections") >= POOL + 1  # the holders' and healthy's
