"""`slow-queries`: running statements grouped by (application, normalised query), and a statement whose
sessions wait on a lock now gets the blocker, not "EXPLAIN it / missing index", as its advice."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.incidents import Sessions, ensure_database, wait_for_active, wait_for_lock_waits, wait_until
from tests.pgcluster import Cluster

pytestmark = pytest.mark.server

DB = "lockdb"
UPDATE = "UPDATE counters SET v = v + {n} WHERE id = 1"


def slow(pg: Cluster, *args: str) -> dict[str, Any]:
    # the extension lives in the postgres database; its view shows every database's statements
    result = run_cli("slow-queries", "-d", pg.dsn(), "-f", "json", "--database", DB, *args)
    assert result.returncode in (0, 1), result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_blocked_statement_points_at_the_blocker(pg: Cluster, sessions: Sessions) -> None:
    ensure_database(pg, DB)
    pg.sql("CREATE TABLE IF NOT EXISTS counters (id int PRIMARY KEY, v int)", dbname=DB)
    pg.sql("INSERT INTO counters VALUES (1, 0) ON CONFLICT DO NOTHING", dbname=DB)
    # once: an update that waited on the lock, then ran (pg_stat_statements counts the wait as its time)
    holder = sessions.open("holder", dbname=DB)
    holder.execute("BEGIN")
    holder.execute(UPDATE.format(n=1).encode())
    first = sessions.send("worker", UPDATE.format(n=2), dbname=DB)
    wait_for_lock_waits(pg, [first])
    holder.execute("COMMIT")
    wait_until(
        lambda: pg.sql("SELECT state FROM pg_stat_activity WHERE pid = %s", [first]) == [("idle",)],
        what="the first update to finish",
    )
    # now: the lock is held again and two updates of the same shape (other literals) wait on it
    holder.execute("BEGIN")
    holder.execute(UPDATE.format(n=3).encode())
    waiting = [sessions.send("worker", UPDATE.format(n=n), dbname=DB) for n in (4, 5)]
    wait_for_lock_waits(pg, waiting)
    sleeper = [sessions.send("report", f"SELECT pg_sleep({n})", dbname=DB) for n in (30, 31, 32)]
    wait_for_active(pg, sleeper)

    doc = slow(
        pg, "--share-warn-pct", "0", "--share-min-total-ms", "0", "--running-min", "0", "--limit", "50"
    )
    groups = {(g["application_name"], g["query"]): g for g in doc["running_groups"]}
    update = groups[("worker", "UPDATE counters SET v = v + ? WHERE id = ?")]
    assert (update["count"], update["blocked"], update["pids"]) == (2, 2, sorted(waiting))
    sleeps = groups[("report", "SELECT pg_sleep(?)")]
    assert (sleeps["count"], sleeps["blocked"]) == (3, 0)
    assert len(doc["running"]) >= 5  # every session is still listed in the JSON

    dominant = [f for f in doc["findings"] if f["code"] == "dominant_statement"]
    on_lock = [f for f in dominant if f["pids"] == sorted(waiting)]
    assert len(on_lock) == 1, dominant
    assert "pgdoctor locks" in on_lock[0]["advice"]
    assert "EXPLAIN" not in on_lock[0]["advice"]
    assert "not at the plan or an index" in on_lock[0]["advice"]
    assert "waiting on a lock right now" in on_lock[0]["message"]
    # the others keep the plan advice
    assert all("EXPLAIN" in f["advice"] for f in dominant if f not in on_lock)
    holder.execute("ROLLBACK")


def test_grouped_running_table_in_text(pg: Cluster, sessions: Sessions) -> None:
    ensure_database(pg, DB)
    pids = [sessions.send("nightly", f"SELECT pg_sleep({30 + n})", dbname=DB) for n in range(4)]
    wait_for_active(pg, pids)
    result = run_cli("slow-queries", "-d", pg.dsn(), "-f", "plain", "--running-min", "0")
    assert result.returncode in (0, 1), result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if "pg_sleep(?)" in line]
    assert len(rows) == 1, result.stdout
    assert rows[0][:2] == ["4", "nightly"]
