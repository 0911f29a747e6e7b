"""`pgdoctor connections` against real servers, in situations built for real."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.incidents import (
    Sessions,
    ensure_database,
    ensure_role,
    wait_for_active,
    wait_for_lock_waits,
    wait_until,
)
from tests.pgcluster import Cluster

pytestmark = pytest.mark.server


def connections_json(pg: Cluster, *args: str) -> tuple[int, dict[str, Any]]:
    result = run_cli("connections", "-d", pg.dsn(), "--format", "json", *args)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def by_pid(doc: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {s["pid"]: s for s in doc["sessions"]}


def test_every_class_is_recognised(pg: Cluster, sessions: Sessions) -> None:
    pg.sql("CREATE TABLE IF NOT EXISTS accounts (id int PRIMARY KEY, balance int)")
    pg.sql("INSERT INTO accounts VALUES (1, 0) ON CONFLICT DO NOTHING")
    idle = sessions.idle("app_idle", 2)
    holder = sessions.idle_in_transaction(
        "app_holder", "UPDATE accounts SET balance = balance + 1 WHERE id = 1"
    )
    aborted = sessions.aborted("app_aborted")
    active = sessions.send("app_active", "SELECT pg_sleep(30)")
    blocked = sessions.send("app_blocked", "UPDATE accounts SET balance = balance - 1 WHERE id = 1")
    wait_for_active(pg, [active])
    wait_for_lock_waits(pg, [blocked])

    _, doc = connections_json(pg)
    s = by_pid(doc)
    assert [s[p]["class"] for p in idle] == ["idle", "idle"]
    assert s[holder]["class"] == "idle_in_transaction"
    assert s[aborted]["class"] == "idle_in_transaction_aborted"
    assert s[active]["class"] == "active"
    assert s[blocked]["class"] == "blocked"  # waiting on a lock wins over state=active
    assert s[blocked]["blocked_by"] == [holder]
    groups = {g["key"]: g for g in doc["groups"]}
    assert groups["app_idle"]["idle"] == 2
    assert groups["app_idle"]["total"] == 2
    assert groups["app_blocked"]["blocked"] == 1
    assert groups["app_aborted"]["idle_in_transaction_aborted"] == 1
    # pgdoctor leaves itself out; background processes are not clients
    assert all(x["application_name"] != "pgdoctor" for x in doc["sessions"])
    assert doc["capacity"]["clients"] == len(doc["sessions"]) == 6
    assert {b["backend_type"] for b in doc["background"]} >= {"checkpointer"}
    codes = {(f["code"], f["subject"]) for f in doc["findings"]}
    assert ("blocked", "app_blocked") in codes
    # the holder blocks someone, so it is reported even though it has been idle for under a minute
    holder_finding = next(f for f in doc["findings"] if f["code"] == "idle_in_transaction")
    assert holder_finding["severity"] == "critical"
    assert holder in holder_finding["pids"]


def test_capacity_matches_server_settings(pg: Cluster, sessions: Sessions) -> None:
    sessions.idle("filler", 3)
    _, doc = connections_json(pg)
    cap = doc["capacity"]
    settings = dict(pg.sql("SELECT name, setting FROM pg_settings WHERE name LIKE '%connections'"))
    assert cap["max_connections"] == int(settings["max_connections"])
    assert cap["superuser_reserved_connections"] == int(settings["superuser_reserved_connections"])
    assert cap["reserved_connections"] == int(settings.get("reserved_connections", 0))
    assert (
        cap["usable"]
        == cap["max_connections"] - cap["superuser_reserved_connections"] - cap["reserved_connections"]
    )
    assert cap["clients"] == 3
    assert cap["usage_pct"] == round(300 / cap["usable"], 1)


@pytest.mark.parametrize("by", ["user", "database", "client"])
def test_group_by(pg: Cluster, sessions: Sessions, by: str) -> None:
    ensure_role(pg, "reporter")
    ensure_database(pg, "analytics")
    sessions.idle("a", 2, user="reporter", dbname="analytics")
    sessions.idle("b", 1)
    _, doc = connections_json(pg, "--by", by)
    groups = {g["key"]: g["total"] for g in doc["groups"]}
    expected = {
        "user": {"reporter": 2, "postgres": 1},
        "database": {"analytics": 2, "postgres": 1},
        "client": {"local socket": 3},
    }[by]
    assert groups == expected
    assert doc["group_by"] == by


def test_snapshot_gives_the_same_answer(pg: Cluster, sessions: Sessions, tmp_path: Path) -> None:
    sessions.idle("svc", 3)
    sessions.idle_in_transaction("worker")
    snap = tmp_path / "snap.json"
    saved = run_cli("snapshot", "-d", pg.dsn(), "-o", str(snap))
    assert saved.returncode == 0, saved.stderr
    live_code, live = connections_json(pg)
    offline = run_cli("connections", "--snapshot", str(snap), "--format", "json")
    assert offline.returncode == live_code
    doc = json.loads(offline.stdout)
    assert doc["capacity"] == live["capacity"]
    assert doc["groups"][0]["key"] == live["groups"][0]["key"]
    assert [(g["key"], g["total"], g["idle"]) for g in doc["groups"]] == [
        (g["key"], g["total"], g["idle"]) for g in live["groups"]
    ]
    assert {s["pid"]: s["class"] for s in doc["sessions"]} == {s["pid"]: s["class"] for s in live["sessions"]}


def test_table_and_plain_output_show_the_picture(pg: Cluster, sessions: Sessions) -> None:
    sessions.idle("data_loader_worker", 4)
    sessions.idle_in_transaction("training_manager")
    for fmt in ("table", "plain", "markdown"):
        result = run_cli("connections", "-d", pg.dsn(), "--format", fmt, "--sessions")
        assert result.returncode == 0, result.stderr
        assert "data_loader_worker" in result.stdout
        assert "Capacity: 5 of" in result.stdout
        assert "\x1b[" not in result.stdout  # NO_COLOR and a pipe: no escape codes
    csv_out = run_cli("connections", "-d", pg.dsn(), "--format", "csv").stdout.splitlines()
    assert csv_out[0].startswith("application,total,active,idle")
    assert any(line.startswith("data_loader_worker,4,0,4") for line in csv_out)


def test_old_snapshot_holder_is_reported(pg: Cluster, sessions: Sessions) -> None:
    conn = sessions.open("reporting")
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    conn.execute("SELECT count(*) FROM pg_class")  # takes the snapshot that pins backend_xmin
    pid = conn.info.backend_pid
    code, doc = connections_json(pg, "--xmin-warn", "0", "--fail-on", "warning")
    assert code == 1
    finding = next(f for f in doc["findings"] if f["code"] == "xmin_horizon")
    assert finding["pids"] == [pid] and finding["subject"] == "reporting"
    assert by_pid(doc)[pid]["xmin_age"] is not None
    _, quiet = connections_json(pg)  # default threshold: an hour
    assert not any(f["code"] == "xmin_horizon" for f in quiet["findings"])


LEAK_AGE_S = 5.0


def idle_for(pg: Cluster, pids: list[int]) -> float:
    """How long the least idle of `pids` has been idle, by the server's clock."""
    rows = pg.sql(
        "SELECT min(extract(epoch FROM clock_timestamp() - state_change)) FROM pg_stat_activity "
        "WHERE pid = ANY(%s)",
        [pids],
    )
    return float(rows[0][0])


def test_leaked_idle_connections_by_age(pg: Cluster, sessions: Sessions) -> None:
    pids = sessions.idle("leaky_worker", 4)
    sessions.idle("busy_api", 4)
    # the age threshold leaves a pgdoctor run on a slow, busy machine time to see them young
    args = ("--leak-min-idle", "4", "--leak-idle-age", str(LEAK_AGE_S), "--leak-share-pct", "100")
    _, fresh = connections_json(pg, "--sessions", *args)
    seen = [s["state_age_s"] for s in fresh["sessions"] if s["pid"] in pids]
    assert len(seen) == 4 and max(seen) < LEAK_AGE_S, "the premise: the first read saw them young"
    assert not any(f["code"] == "idle_connections" for f in fresh["findings"])
    wait_until(
        lambda: idle_for(pg, pids) > LEAK_AGE_S, timeout=LEAK_AGE_S + 30, what="the idle sessions to age"
    )
    sessions.conns[-1].execute("SELECT 1")  # busy_api keeps one connection in use: not all of it is old
    _, aged = connections_json(pg, *args)
    leaks = [f for f in aged["findings"] if f["code"] == "idle_connections"]
    assert [f["subject"] for f in leaks] == ["leaky_worker"]
    assert leaks[0]["pids"] == sorted(pids)
    assert leaks[0]["severity"] == "warning"


def test_connections_and_locks_name_the_same_root_blocker_for_a_role_without_pg_read_all_stats(
    pg: Cluster, sessions: Sessions
) -> None:
    """The chain X <- Y <- Z: X (another role) holds a lock idle in transaction, Y (another role) queues
    for a stronger one, Z (pgdoctor's own role) queues behind Y. Y's wait is hidden from pgdoctor's
    role; both commands must still follow it up to X, the server's root blocker (issue 11)."""
    ensure_role(pg, "nobody_special")  # no pg_read_all_stats
    ensure_role(pg, "batch_owner")
    pg.sql("DROP TABLE IF EXISTS ledger")
    pg.sql("CREATE TABLE ledger (id int PRIMARY KEY, amount int)")
    pg.sql("INSERT INTO ledger VALUES (1, 0)")
    pg.sql("ALTER TABLE ledger OWNER TO batch_owner")
    pg.sql("GRANT SELECT ON ledger TO nobody_special")
    holder = sessions.idle_in_transaction(
        "batch_holder", "UPDATE ledger SET amount = 1 WHERE id = 1", user="batch_owner"
    )
    middle = sessions.send(
        "batch_ddl", "BEGIN; LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE", user="batch_owner"
    )
    wait_for_lock_waits(pg, [middle])
    reader = sessions.send("reporting", "SELECT count(*) FROM ledger", user="nobody_special")
    wait_for_lock_waits(pg, [reader])
    blocking = dict(pg.sql("SELECT pid, pg_blocking_pids(pid) FROM pg_stat_activity WHERE pid IN (%s, %s)",
                           [middle, reader]))  # fmt: skip
    assert blocking == {middle: [holder], reader: [middle]}  # the server's chain

    dsn = pg.dsn(user="nobody_special")
    conns = run_cli("connections", "-d", dsn, "--format", "json")
    locks = run_cli("locks", "-d", dsn, "--format", "json")
    assert conns.returncode == locks.returncode == 4, (conns.stderr, locks.stderr)  # privilege finding
    (finding,) = [f for f in json.loads(conns.stdout)["findings"] if f["code"] == "blocked"]
    assert finding["pids"] == [reader]
    assert f"root blocker(s): {holder} (batch_holder, " in finding["message"]
    assert [r["pid"] for r in json.loads(locks.stdout)["roots"]] == [holder]
