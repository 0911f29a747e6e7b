"""Findings' actions from recorded snapshots (no server): the statements a live run would have printed at
the moment of capture, the same in JSON and in every text format, and the rules that choose them (which
statement, which guard, when a prevention applies) on rows made for the purpose."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from pgdoctor.analyze import actions
from pgdoctor.analyze.connections import analyze
from pgdoctor.analyze.locks import analyze as analyze_locks
from pgdoctor.analyze.sessions import ViaPgBouncer, to_session
from pgdoctor.collect.activity import ActivityRow
from pgdoctor.collect.connections import ConnectionsData
from pgdoctor.collect.locks import LocksData
from pgdoctor.collect.server import ServerInfo, SettingRow
from pgdoctor.snapshot import load_dataset
from tests.conftest import FIXTURES, invoke

INCIDENTS = sorted(FIXTURES.glob("incident-pg*.json")) + sorted(
    (FIXTURES / "format-1").glob("incident-pg*.json")
)


def ago(age: float) -> str:
    return f"interval '{math.floor(age * 1000) / 1000:.3f} seconds'"


@pytest.fixture(params=INCIDENTS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def incident(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path


def test_the_incident_actions(incident: Path) -> None:
    data = load_dataset(incident, "connections", ConnectionsData)
    rows = {r.pid: r for r in data.activity}
    report = analyze(data)
    found = {(f.code, f.subject): f for f in report.findings}

    leak = found[("idle_connections", "data_loader_worker")]
    youngest = min(rows[p].state_age_s or 0 for p in leak.pids)
    assert leak.action.splitlines() == [
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
        f"pid IN ({', '.join(map(str, leak.pids))}) AND application_name = 'data_loader_worker' AND "
        "usename = 'app' AND datname = 'postgres' AND "
        f"state = 'idle' AND state_change <= now() - {ago(youngest)} AND backend_type = 'client backend' AND "
        "pid <> pg_backend_pid();",
        """ALTER ROLE "app" IN DATABASE "postgres" SET idle_session_timeout = '600s';""",
    ]

    idle_xact = found[("idle_in_transaction", "training_manager")]
    first, prevention = idle_xact.action.splitlines()
    assert f"WHERE pid IN ({', '.join(map(str, idle_xact.pids))}) AND" in first
    assert "state = 'idle in transaction'" in first
    assert f"xact_start <= now() - {ago(min(rows[p].xact_age_s or 0 for p in idle_xact.pids))}" in first
    assert prevention.endswith("SET idle_in_transaction_session_timeout = '600s';")

    # the root blocker, ended only while it is the same session in the same transaction
    holder = next(r for r in data.activity if "SET status = 'training'" in (r.query or ""))
    guarded = (
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = {holder.pid} AND "
        "application_name = 'training_manager' AND "
        f"backend_start <= now() - {ago(holder.backend_age_s or 0)} AND "
        f"xact_start <= now() - {ago(holder.xact_age_s or 0)} AND pid <> pg_backend_pid();"
    )
    assert found[("blocked", "job_api")].action == guarded
    assert found[("capacity", "server")].action == ""

    # locks names the same root blocker with the same statement (a format-1 snapshot read the activity
    # again for locks, without backend ages: the guard it can state)
    locks = analyze_locks(load_dataset(incident, "locks", LocksData), wait_warn_s=10)
    by_code = {f.code: f for f in locks.findings}
    if incident.parent.name != "format-1":
        assert by_code["long_wait"].action == guarded
    assert by_code["long_wait"].action.startswith(guarded.split(" AND backend_start", maxsplit=1)[0])
    blocker = by_code["idle_in_transaction_blocker"].action.splitlines()
    assert blocker[0].startswith(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid IN ({holder.pid})"
    )


@pytest.mark.parametrize("fmt", ["plain", "markdown", "table"])
def test_text_formats_print_the_json_action(incident: Path, fmt: str) -> None:
    """From a snapshot the ages are fixed: the text shows exactly the JSON's statements, one `sql:` line
    each (markdown escapes its active characters, `<>` here)."""
    import json

    doc = json.loads(invoke("connections", "--snapshot", str(incident), "-f", "json").stdout)
    text = invoke("connections", "--snapshot", str(incident), "-f", fmt).stdout
    lines = [line for f in doc["findings"] for line in f["action"].splitlines()]
    assert len(lines) == 5
    for line in lines:
        shown = line.replace("<", "\\<").replace(">", "\\>") if fmt == "markdown" else line
        assert f"  sql: {shown}\n" in text


# --- the rules, on rows made for them --------------------------------------------------------------


def server(version_num: int = 180000, **settings: str) -> ServerInfo:
    rows = [SettingRow(name, value, "ms", "user", False) for name, value in settings.items()]
    return ServerInfo(version_num, "PostgreSQL", "postgres", True, True, rows)


def row(pid: int, state: str | None, **kw: object) -> ActivityRow:
    base: dict[str, object] = {
        "pid": pid, "backend_type": "client backend", "datname": "db", "usename": "u",
        "application_name": "app",
        "client_addr": None, "client_hostname": None, "state": state, "wait_event_type": None,
        "wait_event": None, "backend_age_s": 100.0, "xact_age_s": 50.0, "query_age_s": 20.0,
        "state_age_s": 20.0, "xmin_age": None, "query": "SELECT 1", "blocked_by": [],
    }  # fmt: skip
    return ActivityRow(**{**base, **kw})  # type: ignore[arg-type]


def test_a_running_root_blocker_is_cancelled_while_it_runs_the_same_statement() -> None:
    action = actions.end_session(row(7, "active"))
    assert action.startswith("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE pid = 7 AND")
    assert (
        f"query_start <= now() - {ago(20.0)}" in action and f"backend_start <= now() - {ago(100.0)}" in action
    )


def test_no_action_for_what_cannot_be_ended_safely() -> None:
    assert actions.end_session(row(0, "idle in transaction")) == ""  # a prepared transaction
    assert actions.end_session(row(7, None)) == ""  # state hidden from this role
    assert actions.end_session(row(7, "idle", application_name="pgdoctor")) == ""
    assert actions.terminate_sessions([to_session(row(7, "idle", application_name="pgdoctor"))]) == ""
    hidden_age = actions.terminate_sessions([to_session(row(7, "idle", state_age_s=None))])
    assert "state_change" not in hidden_age and "pid IN (7)" in hidden_age  # no guard it cannot state


def test_prevention_only_where_it_helps() -> None:
    s = [to_session(row(7, "idle"))]
    assert actions.prevent(s, "idle_session_timeout", 600, server()) == [
        """ALTER ROLE "u" IN DATABASE "db" SET idle_session_timeout = '600s';"""
    ]
    assert actions.prevent(s, "idle_session_timeout", 600, server(130000)) == []  # PostgreSQL 14+
    assert actions.prevent(s, "idle_session_timeout", 600, server(idle_session_timeout="60000")) == []
    assert actions.prevent(s, "idle_session_timeout", 2.5, server(idle_session_timeout="60000")) == [
        """ALTER ROLE "u" IN DATABASE "db" SET idle_session_timeout = '2500ms';"""
    ]
    assert actions.prevent(s, "idle_session_timeout", 0, server()) == []  # 0 would turn it off
    assert (
        actions.prevent([to_session(row(7, "idle", usename=None))], "idle_session_timeout", 600, server())
        == []
    )
    via = ViaPgBouncer("db/u", None, None, None)
    assert actions.prevent([replace(s[0], via_pgbouncer=via)], "idle_session_timeout", 600, server()) == []
    two = [*s, to_session(row(8, "idle", datname="other"))]
    assert len(actions.prevent(two, "idle_session_timeout", 600, server())) == 2  # one per role and database


def test_pgdoctor_is_told_apart_by_the_marker_its_statements_carry() -> None:
    from pgdoctor import db

    assert actions.PGDOCTOR_MARKER == db.MARKER
    between_reads = to_session(row(7, "idle", application_name="", query=f"SELECT {db.MARKER} 1"))
    assert actions.terminate_sessions([between_reads]) == ""
    assert actions.prevent([between_reads], "idle_session_timeout", 600, server()) == []
