"""Every statement a finding's `action` prints, run on a real server in the incident (as the superuser an
operator would be): exactly the sessions the finding named are gone, every other session is still there,
and the prevention (`ALTER ROLE … IN DATABASE … SET …`) lands on that role in that database.

The incident: an application with leaked idle connections (fired by count and share, so some named
sessions are younger than --leak-idle-age), one whose name holds a quote and a backslash, run by a role
and in a database whose names hold quotes, a backslash and non-ASCII letters, a healthy application,
sessions named `pgdoctor`, a real pgdoctor reading all along (`--sample`), a connection of the leaky
application opened after the read, and a transaction left idle that blocks another application (with a
younger idle transaction beside it that the finding does not name).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.conftest import NO_CONFIG, ROOT, run_cli
from tests.incidents import Sessions, ensure_role, wait_for_active, wait_for_lock_waits, wait_until
from tests.pgcluster import Cluster

pytestmark = pytest.mark.server

ROLE = "act_app"
WEIRD_ROLE = 'o\'brien "ü" \\ x'
WEIRD_DB = 'it\'s "ü" db\\'
QUOTE_APP = 'it\'s a "q" \\ app'
THRESHOLDS = [
    "--leak-min-idle", "3", "--leak-share-pct", "1", "--leak-idle-age", "3600", "--idle-xact-warn", "3600"
]  # fmt: skip


def ages(text: str) -> str:
    """`text` with the ages of its guards left out (two reads are not at the same moment)."""
    return re.sub(r"interval '[0-9.]+ seconds'", "interval '…'", text)


def idle_longer(pg: Cluster, pid: int, seconds: float) -> bool:
    sql = "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND state_change < now() - %s * interval '1s'"
    return bool(pg.sql(sql, [pid, seconds]))


def alive(pg: Cluster, pids: set[int]) -> set[int]:
    rows = pg.sql("SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", [sorted(pids)])
    return {r[0] for r in rows}


def run_action(pg: Cluster, action: str) -> tuple[set[int], list[str]]:
    """Run each statement of `action` as the superuser; the pids the terminating statements selected,
    and the other statements (prevention) run."""
    selected: set[int] = set()
    others = []
    for statement in action.splitlines():
        assert statement.endswith(";"), statement
        if "pg_terminate_backend" in statement or "pg_cancel_backend" in statement:
            probe = statement.replace("SELECT pg_terminate_backend(pid)", "SELECT pid", 1)
            probe = probe.replace("SELECT pg_cancel_backend(pid)", "SELECT pid", 1)
            # what it selects, read just before it runs: the test names the sessions, the run ends them
            before = {r[0] for r in pg.sql(probe)}
            rows = pg.sql(statement)
            assert len(rows) == len(before) and all(r[0] is True for r in rows), (statement, rows)
            selected |= before
        else:
            pg.sql(statement)
            others.append(statement)
    return selected, others


def check_ended(pg: Cluster, action: str, expected: set[int], everyone: set[int]) -> list[str]:
    """Run the action: exactly `expected` ends, the rest of `everyone` lives on."""
    selected, others = run_action(pg, action)
    assert selected == expected
    wait_until(lambda: not alive(pg, expected), 30, f"pids {sorted(expected)} to end")
    assert alive(pg, everyone - expected) == everyone - expected
    return others


def role_settings(pg: Cluster, role: str, db: str) -> list[str]:
    rows = pg.sql(
        "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
        "JOIN pg_database d ON d.oid = s.setdatabase WHERE r.rolname = %s AND d.datname = %s",
        [role, db],
    )
    return list(rows[0][0]) if rows else []


def open_as(pg: Cluster, sessions: Sessions, app: str, user: str, dbname: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(
        host=str(pg.socket_dir), port=pg.port, user=user, dbname=dbname, application_name=app, autocommit=True
    )
    sessions.conns.append(conn)
    return conn


@contextlib.contextmanager
def sampling_pgdoctor(pg: Cluster, known: set[int]) -> Iterator[int]:
    """A real pgdoctor reading all along (`connections --sample`): its backend's pid."""
    env = {**os.environ, **NO_CONFIG, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgdoctor", "connections", "--sample", "300s", "-d", pg.dsn(), "-f", "json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        found: list[int] = []

        def started() -> bool:
            rows = pg.sql(
                "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND "
                "query LIKE '%%/* pgdoctor */%%' AND pid <> pg_backend_pid() AND NOT pid = ANY(%s)",
                [sorted(known)],
            )
            found[:] = [r[0] for r in rows]
            return len(found) == 1

        wait_until(started, 60, "pgdoctor --sample to read")
        yield found[0]
        assert alive(pg, {found[0]}) == {found[0]}, "pgdoctor's own session was ended"
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: it reports what it sampled and exits 0
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        assert code == 0, proc.stderr.read().decode() if proc.stderr else code


@pytest.fixture
def weird_names(pg: Cluster) -> Iterator[None]:
    with pg.connect() as conn:
        conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {}").format(psycopg.sql.Identifier(WEIRD_DB)))
        conn.execute(psycopg.sql.SQL("DROP ROLE IF EXISTS {}").format(psycopg.sql.Identifier(WEIRD_ROLE)))
        conn.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN").format(psycopg.sql.Identifier(WEIRD_ROLE)))
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(WEIRD_DB)))
    ensure_role(pg, ROLE)
    try:
        yield
    finally:
        pg.terminate_others()
        with pg.connect() as conn:
            conn.execute(psycopg.sql.SQL("DROP DATABASE {}").format(psycopg.sql.Identifier(WEIRD_DB)))
            conn.execute(psycopg.sql.SQL("DROP ROLE {}").format(psycopg.sql.Identifier(WEIRD_ROLE)))
            conn.execute(f"ALTER ROLE {ROLE} RESET ALL")
            conn.execute(f"ALTER ROLE {ROLE} IN DATABASE postgres RESET ALL")


def findings(*args: str) -> list[dict[str, Any]]:
    result = run_cli(*args, "-f", "json")
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout)["findings"])


def test_leaked_idle_connections_end_exactly_as_named(
    pg: Cluster, sessions: Sessions, weird_names: None
) -> None:
    leaky = sessions.idle("leaky", 4, user=ROLE)
    quoted = []
    for _ in range(3):
        conn = open_as(pg, sessions, QUOTE_APP, WEIRD_ROLE, WEIRD_DB)
        conn.execute("SELECT 1")
        quoted.append(conn.info.backend_pid)
    healthy = [*sessions.idle("web", 2, user=ROLE), sessions.send("web", "SELECT pg_sleep(600)", user=ROLE)]
    pgdoctor_named = sessions.idle("pgdoctor", 3, user=ROLE)
    unnamed = sessions.idle("", 3, user=ROLE)  # no application_name: like a pgdoctor between its reads
    scenario = set(leaky + quoted + healthy + pgdoctor_named + unnamed)
    with sampling_pgdoctor(pg, scenario) as sampler:
        got: dict[tuple[str, str], dict[str, Any]] = {}

        def read_with_the_sampler_idle() -> bool:  # it reads every 100 ms: a read catches it idle
            got.update(
                {(f["code"], f["subject"]): f for f in findings("connections", "-d", pg.dsn(), *THRESHOLDS)}
            )
            return sampler in got[("idle_connections", "(none)")]["pids"]

        wait_until(read_with_the_sampler_idle, 120, "a read that names pgdoctor's idle session")
        text = run_cli("connections", "-d", pg.dsn(), "-f", "plain", *THRESHOLDS).stdout
        late = sessions.idle("leaky", 1, user=ROLE)  # a new pooled connection, after the read
        everyone = scenario | set(late) | {sampler}

        assert set(got[("idle_connections", "leaky")]["pids"]) == set(leaky)
        assert set(got[("idle_connections", QUOTE_APP)]["pids"]) == set(quoted)
        assert set(got[("idle_connections", "(none)")]["pids"]) == {*unnamed, sampler}
        assert got[("idle_connections", "pgdoctor")]["action"] == ""  # never pgdoctor's sessions
        assert not any(f["subject"] == "web" for f in got.values())
        for key in (
            ("idle_connections", "leaky"),
            ("idle_connections", QUOTE_APP),
            ("idle_connections", "(none)"),
        ):
            action = got[key]["action"]
            named = set(got[key]["pids"]) - {sampler}  # never pgdoctor: named, but not in the action
            for line in action.splitlines():  # the text output prints the same statements (a later read)
                assert f"  sql: {ages(line)}\n" in ages(text)
            # the late connection has been idle longer than the statement's age guard asks: only the pid
            # list tells it from the named ones
            guard = float(re.findall(r"state_change <= now\(\) - interval '([0-9.]+) seconds'", action)[0])
            wait_until(functools.partial(idle_longer, pg, late[0], guard + 0.2), 30, "the late one to age")
            prevention = check_ended(pg, action, named, everyone)
            everyone -= named
            role, db = (WEIRD_ROLE, WEIRD_DB) if key[1] == QUOTE_APP else (ROLE, "postgres")
            assert len(prevention) == 1 and "SET idle_session_timeout = '3600s'" in prevention[0]
            assert role_settings(pg, role, db) == ["idle_session_timeout=3600s"]
        assert alive(pg, everyone) == everyone


def blocker_incident(pg: Cluster, sessions: Sessions) -> tuple[int, int, int]:
    """A transaction left idle holding a row lock another application waits on; beside it an older idle
    transaction of the same application that blocks no one (so only the pid tells it from the holder)."""
    bystander = sessions.idle_in_transaction("batch", user=ROLE)
    holder = sessions.idle_in_transaction("batch", "UPDATE act_t SET n = n + 1 WHERE id = 1", user=ROLE)
    waiter = sessions.send("waiter", "UPDATE act_t SET n = n + 1 WHERE id = 1", user=ROLE)
    wait_for_lock_waits(pg, [waiter])
    return holder, bystander, waiter


@pytest.mark.parametrize(
    ("command", "code", "subject"),
    [
        ("connections", "idle_in_transaction", "batch"),
        ("connections", "blocked", "waiter"),
        ("locks", "idle_in_transaction_blocker", "batch"),
        ("locks", "long_wait", "batch"),
    ],
)
def test_a_blocking_transaction_ends_exactly_as_named(
    pg: Cluster, sessions: Sessions, weird_names: None, command: str, code: str, subject: str
) -> None:
    pg.sql("CREATE TABLE IF NOT EXISTS act_t (id int PRIMARY KEY, n int)")
    pg.sql("INSERT INTO act_t VALUES (1, 0) ON CONFLICT DO NOTHING")
    pg.sql(f"GRANT ALL ON act_t TO {ROLE}")
    healthy = sessions.idle("web", 2, user=ROLE)
    holder, bystander, waiter = blocker_incident(pg, sessions)
    everyone = {holder, bystander, waiter, *healthy}
    extra = THRESHOLDS if command == "connections" else ["--wait-warn", "0"]
    got = {(f["code"], f["subject"]): f for f in findings(command, "-d", pg.dsn(), *extra)}
    finding = got[(code, subject)]
    if code in ("idle_in_transaction", "idle_in_transaction_blocker"):
        assert finding["pids"] == [holder]  # the younger idle transaction is not named
    prevention = check_ended(pg, finding["action"], {holder}, everyone)
    # the waiter got its lock and went on: still connected
    waiting = "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'"
    wait_until(lambda: not pg.sql(waiting, [waiter]), 30, "the waiter to get its lock")
    if code in ("idle_in_transaction", "idle_in_transaction_blocker"):
        assert prevention == [
            f'ALTER ROLE "{ROLE}" IN DATABASE "postgres" SET idle_in_transaction_session_timeout = \'600s\';'
        ]
        assert role_settings(pg, ROLE, "postgres") == ["idle_in_transaction_session_timeout=600s"]
    else:
        assert prevention == []


def test_a_snapshot_holder_ends_alone(pg: Cluster, sessions: Sessions, weird_names: None) -> None:
    """xmin_horizon: one finding per transaction holding a snapshot; its action ends that one only."""
    holders = [
        sessions.idle_in_transaction("snap", "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", user=ROLE)
        for _ in range(2)
    ]
    for conn in sessions.conns[-2:]:  # the snapshot is taken by the first query after SET TRANSACTION
        conn.execute("SELECT 1")
    healthy = sessions.idle("web", 2, user=ROLE)
    got = [
        f for f in findings("connections", "-d", pg.dsn(), "--xmin-warn", "0") if f["code"] == "xmin_horizon"
    ]
    assert sorted(p for f in got for p in f["pids"]) == sorted(holders)
    first = next(f for f in got if f["pids"] == [holders[0]])
    assert check_ended(pg, first["action"], {holders[0]}, {*holders, *healthy}) == []


def test_long_running_statements_are_cancelled_exactly_as_named(
    pg: Cluster, sessions: Sessions, weird_names: None
) -> None:
    """long_running (slow-queries): the action cancels exactly the named statements; their sessions stay
    connected, another application's statement runs on."""
    report = [sessions.send("report", "SELECT pg_sleep(600)", user=ROLE) for _ in range(2)]
    other = sessions.send("web", "SELECT pg_sleep(600)", user=ROLE)
    wait_for_active(pg, [*report, other])
    running = (
        "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND state = 'active' "
        "AND query_start < now() - interval '1s'"
    )
    wait_until(lambda: all(pg.sql(running, [p]) for p in report), 30, "the statements to run 1 s")
    got = findings("slow-queries", "-d", pg.dsn(), "--running-warn", "1")
    (finding,) = [f for f in got if f["code"] == "long_running" and f["subject"] == "report"]
    assert finding["pids"] == sorted(report)
    selected, prevention = run_action(pg, finding["action"])
    assert (selected, prevention) == (set(report), [])
    idle = "SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s) AND state = 'idle'"
    wait_until(lambda: {r[0] for r in pg.sql(idle, [report])} == set(report), 30, "the cancelled ones idle")
    assert pg.sql("SELECT state FROM pg_stat_activity WHERE pid = %s", [other]) == [("active",)]
