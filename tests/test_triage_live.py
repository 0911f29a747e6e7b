"""`pgdoctor triage` on a real server in an incident made of real sessions: two root blockers idle in a
transaction holding row locks, updaters blocked behind each, and an application's leaked idle
connections. One problem per root blocker, ranked; every pid named is a session of the server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.incidents import Sessions, wait_for_lock_waits
from tests.pgcluster import Cluster

pytestmark = pytest.mark.server

TABLE = "triage_jobs"
LEAKED = 26  # idle connections of one application: over 25% of the 97 usable slots (leak_share_pct)


@dataclass
class Incident:
    pg: Cluster
    sessions: Sessions
    big_root: int = 0  # holds up three updaters
    big_waiters: list[int] = field(default_factory=list)
    small_root: int = 0  # holds up one
    small_waiters: list[int] = field(default_factory=list)
    leaked: list[int] = field(default_factory=list)


@pytest.fixture(scope="module")
def incident(pg: Cluster) -> Iterator[Incident]:
    pg.terminate_others()
    pg.sql(f"DROP TABLE IF EXISTS {TABLE}")
    pg.sql(f"CREATE TABLE {TABLE} (id int PRIMARY KEY, status text)")
    pg.sql(f"INSERT INTO {TABLE} VALUES (1, 'queued'), (2, 'queued')")
    pg.sql("SELECT pg_stat_statements_reset()")  # earlier tests' workloads would be problems of their own
    s = Sessions(pg)
    inc = Incident(pg, s)
    try:
        inc.leaked = s.idle("leaky_loader", LEAKED)
        inc.big_root = s.idle_in_transaction(
            "training_manager", f"UPDATE {TABLE} SET status = 'training' WHERE id = 1"
        )
        inc.small_root = s.idle_in_transaction(
            "nightly_batch", f"UPDATE {TABLE} SET status = 'batch' WHERE id = 2"
        )
        for _ in range(3):
            inc.big_waiters.append(s.send("job_api", f"UPDATE {TABLE} SET status = 'cancelled' WHERE id = 1"))
            wait_for_lock_waits(pg, inc.big_waiters, timeout=60)  # one by one: a stable queue order
        inc.small_waiters.append(s.send("reporter", f"UPDATE {TABLE} SET status = 'seen' WHERE id = 2"))
        wait_for_lock_waits(pg, inc.small_waiters, timeout=60)
        yield inc
    finally:
        s.close()
        pg.sql(f"DROP TABLE IF EXISTS {TABLE}")


def triage_json(pg: Cluster, *args: str) -> tuple[dict[str, Any], int]:
    result = run_cli("triage", "-d", pg.dsn(), "-f", "json", *args)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout), result.returncode


def server_pids(pg: Cluster) -> set[int]:
    return {r[0] for r in pg.sql("SELECT pid FROM pg_stat_activity")}


def test_one_problem_per_root_blocker_ranked(incident: Incident) -> None:
    doc, code = triage_json(incident.pg)
    assert code == 0  # --fail-on never
    problems = doc["problems"]
    assert [p["rank"] for p in problems] == list(range(1, len(problems) + 1))
    roots = [p["root_pid"] for p in problems if p["kind"] == "root_blocker"]
    assert sorted(roots) == sorted([incident.big_root, incident.small_root])  # one problem each

    big, small, leak = problems[0], problems[1], problems[2]
    assert big["root_pid"] == incident.big_root  # holds up 3: what to do first
    assert small["root_pid"] == incident.small_root
    assert big["severity"] == small["severity"] == "critical"
    assert big["impact"]["sessions_blocked"] == 3 and small["impact"]["sessions_blocked"] == 1
    # the root blocker's findings of every command are its evidence, not problems of their own
    assert {"idle_in_transaction_blocker", "blocked", "idle_in_transaction"} <= set(big["codes"])
    assert {"connections", "locks"} <= set(big["sources"])
    assert set(big["pids"]) == {incident.big_root, *incident.big_waiters}
    assert set(small["pids"]) == {incident.small_root, *incident.small_waiters}
    ends_root = f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = {incident.big_root} AND "
    assert big["actions"][0].startswith(ends_root)
    assert all(a.startswith("ALTER ROLE ") for a in big["actions"][1:])
    assert big["subject"] == f"pid {incident.big_root} (training_manager)"
    assert "holds up 3 session(s) (job_api: 3)" in big["message"]

    assert leak["codes"] == ["idle_connections"] and leak["subject"] == "leaky_loader"
    assert set(leak["pids"]) == set(incident.leaked)
    assert leak["impact"] == {"sessions_blocked": 0, "clients_waiting": 0, "slots_held": LEAKED}
    assert len(problems) == 3

    # every finding at warning or above is in exactly one problem; info ones in none
    placed = [i for p in problems for i in p["findings"]]
    assert len(placed) == len(set(placed))
    serious = [i for i, f in enumerate(doc["findings"]) if f["severity"] != "info"]
    assert sorted(placed) == serious

    # every pid named is a session of the server
    named = {pid for p in problems for pid in p["pids"]} | set(roots)
    assert named <= server_pids(incident.pg)


def test_the_sub_reports_are_the_commands_own(incident: Incident) -> None:
    doc, _ = triage_json(incident.pg)
    assert doc["command"] == "triage" and doc["pgbouncer"] is None
    assert doc["connections"]["command"] == "connections"
    assert doc["locks"]["command"] == "locks"
    assert doc["slow_queries"]["command"] == "slow-queries"
    assert {r["pid"] for r in doc["locks"]["roots"]} == {incident.big_root, incident.small_root}
    # the findings list holds every command's findings, tagged with the command
    for name, sub in (("connections", "connections"), ("locks", "locks"), ("slow-queries", "slow_queries")):
        mine = [
            {k: v for k, v in f.items() if k != "command"} for f in doc["findings"] if f["command"] == name
        ]
        theirs = doc[sub]["findings"]
        if name == "slow-queries":  # pg_stat_statements unreadable: a note in triage (not here)
            theirs = [f for f in theirs if not f["code"].startswith("extension_")]
            mine = [f for f in mine if not f["code"].startswith("extension_")]
        assert mine == theirs


def test_what_to_do_first_is_at_the_top(incident: Incident) -> None:
    result = run_cli("triage", "-d", incident.pg.dsn(), "-f", "plain")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    top = lines.index("What to do first")
    assert top < 10
    assert lines[top + 1].startswith(f"CRITICAL pid {incident.big_root} (training_manager): root blocker")
    ends_root = "  sql: SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = "
    ends_root += f"{incident.big_root} AND "
    assert any(line.startswith(ends_root) for line in lines[top : top + 6])


@pytest.mark.parametrize(("fail_on", "expected"), [("never", 0), ("warning", 1), ("critical", 1)])
def test_fail_on(incident: Incident, fail_on: str, expected: int) -> None:
    result = run_cli("triage", "-d", incident.pg.dsn(), "-f", "json", "--fail-on", fail_on)
    assert result.returncode == expected, result.stderr


def test_one_connection_and_marked_statements_in_the_incident(incident: Incident) -> None:
    """With sessions waiting on locks triage reads pg_locks too: still one connection, every statement
    its own and marked (tests/test_harmless.py, with waiters)."""
    from tests.test_harmless import sessions_opened

    pg = incident.pg
    pg.sql("SELECT pg_stat_statements_reset()")
    before = sessions_opened(pg)
    doc, _ = triage_json(pg)
    assert doc["locks"]["waiting"]  # pg_locks was read: the waits have their lock modes
    assert all(w["mode"] for w in doc["locks"]["waiting"])
    assert sessions_opened(pg) - before == 1 + 1  # triage's, and the superuser's of pg.sql()
    unmarked = pg.sql(
        "SELECT query FROM pg_stat_statements WHERE strpos(query, '/* pgdoctor */') = 0 "
        "AND query NOT LIKE '%pg_stat_statements_reset%' "
        "AND query NOT LIKE 'SELECT sum(sessions) FROM pg_stat_database'"
    )
    assert unmarked == []
