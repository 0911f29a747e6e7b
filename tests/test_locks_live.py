"""`pgdoctor locks` against real servers: every blocking pair checked against what the server says."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgdoctor import queries
from pgdoctor.collect.locks import _WaitsRow
from pgdoctor.db import connect
from tests.conftest import run_cli
from tests.incidents import (
    Sessions,
    ensure_database,
    ensure_role,
    wait_for_active,
    wait_for_lock_waits,
    wait_until,
)
from tests.pgcluster import VERSIONS, Cluster, running_cluster

pytestmark = pytest.mark.server


def locks_json(pg: Cluster, *args: str) -> tuple[int, dict[str, Any]]:
    result = run_cli("locks", "-d", pg.dsn(), "--format", "json", *args)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def server_pairs(pg: Cluster) -> dict[int, set[int]]:
    """pid -> the pids blocking it, as the server reports it right now."""
    rows = pg.sql(
        "SELECT pid, pg_blocking_pids(pid) FROM pg_stat_activity "
        "WHERE wait_event_type = 'Lock' AND application_name <> 'pgdoctor'"
    )
    return {pid: set(blockers) for pid, blockers in rows}


def reported_pairs(doc: dict[str, Any]) -> dict[int, set[int]]:
    return {w["pid"]: set(w["blocked_by"]) for w in doc["waiting"]}


def tree_edges(doc: dict[str, Any]) -> set[tuple[int, int]]:
    """(parent, child) for every edge drawn in the trees."""
    edges: set[tuple[int, int]] = set()

    def walk(node: dict[str, Any]) -> None:
        for child in node["children"]:
            edges.add((node["pid"], child["pid"]))
            walk(child)
        edges.update((node["pid"], pid) for pid in node["also_blocks"] + node["cycle_to"])

    for tree in doc["trees"]:
        walk(tree)
    return edges


def check_against_server(pg: Cluster, doc: dict[str, Any]) -> None:
    """Every blocking pair pgdoctor reports is the server's, and every one is drawn in the trees."""
    assert reported_pairs(doc) == server_pairs(pg)
    expected_edges = {(b, w["pid"]) for w in doc["waiting"] for b in w["blocked_by"]}
    assert tree_edges(doc) == expected_edges


def by_pid(doc: dict[str, Any], key: str = "waiting") -> dict[int, dict[str, Any]]:
    return {x["pid"]: x for x in doc[key]}


@pytest.fixture
def accounts(pg: Cluster) -> str:
    pg.sql("DROP TABLE IF EXISTS accounts")
    pg.sql("CREATE TABLE accounts (id int PRIMARY KEY, balance int)")
    pg.sql("INSERT INTO accounts SELECT g, 0 FROM generate_series(1, 10) g")
    return "public.accounts"


def statements_on_pg_locks(pg: Cluster) -> int:
    rows = pg.sql(
        "SELECT coalesce(sum(calls), 0)::int FROM pg_stat_statements "
        "WHERE query LIKE '%FROM pg_locks%' AND query NOT LIKE '%pg_stat_statements%'"
    )
    return int(rows[0][0])


def test_row_lock_queue_behind_idle_in_transaction(pg: Cluster, sessions: Sessions, accounts: str) -> None:
    holder = sessions.idle_in_transaction("billing", "UPDATE accounts SET balance = 1 WHERE id = 1")
    xid = pg.sql("SELECT backend_xid::text FROM pg_stat_activity WHERE pid = %s", [holder])[0][0]
    ctid = pg.sql("SELECT ctid::text FROM accounts WHERE id = 1")[0][0]
    queue: list[int] = []
    for i in range(4):  # one at a time, so the queue order is known
        queue.append(sessions.send(f"api{i}", "UPDATE accounts SET balance = balance + 1 WHERE id = 1"))
        wait_for_lock_waits(pg, queue)

    code, doc = locks_json(pg)
    assert code == 0
    check_against_server(pg, doc)
    w = by_pid(doc)
    assert set(w) == set(queue)
    # the first waiter waits for the holder's transaction; the later ones queue on the tuple lock the
    # first one holds (and on the ones ahead of them, as the server reports)
    first, *rest = queue
    assert (w[first]["locktype"], w[first]["mode"]) == ("transactionid", "ShareLock")
    assert w[first]["object"] == f"transaction {xid}"
    assert w[first]["blocked_by"] == [holder]
    for pid in rest:
        assert (w[pid]["locktype"], w[pid]["mode"]) == ("tuple", "ExclusiveLock")
        assert w[pid]["object"] == f"{accounts} {ctid}"
        assert first in w[pid]["blocked_by"]
    for x in doc["waiting"]:
        assert x["wait_source"] == "waitstart"  # PostgreSQL 14+
        assert x["wait_s"] > 0
        assert x["query"] == "UPDATE accounts SET balance = balance + 1 WHERE id = 1"

    # breadth first: the queue hangs two deep under the holder, not as a chain as deep as the queue
    (tree,) = doc["trees"]
    assert [c["pid"] for c in tree["children"]] == [first]
    assert sorted(c["pid"] for c in tree["children"][0]["children"]) == sorted(rest)
    (root,) = doc["roots"]
    assert root["pid"] == holder
    assert root["state"] == "idle in transaction"
    assert root["blocks_total"] == 4
    assert root["blocks_direct"] == 1
    assert root["action"] == f"SELECT pg_terminate_backend({holder});"
    assert root["query"] == "UPDATE accounts SET balance = 1 WHERE id = 1"
    assert root["xact_age_s"] >= root["state_age_s"] > 0

    finding = next(f for f in doc["findings"] if f["code"] == "idle_in_transaction_blocker")
    assert finding["severity"] == "critical"
    assert finding["pids"] == [holder]
    assert f"SELECT pg_terminate_backend({holder});" in finding["advice"]
    # the tuple queue: len(rest) sessions on one tuple
    queue_findings = [f for f in doc["findings"] if f["code"] == "lock_queue"]
    assert queue_findings == []  # 3 < --queue-warn 5
    _, doc2 = locks_json(pg, "--queue-warn", "3")
    (q,) = [f for f in doc2["findings"] if f["code"] == "lock_queue"]
    assert q["subject"] == f"{accounts} {ctid}"
    assert q["pids"] == sorted(rest)

    # pgdoctor printed the SQL and ran none of it
    assert pg.sql("SELECT state FROM pg_stat_activity WHERE pid = %s", [holder]) == [("idle in transaction",)]


def test_ddl_behind_long_reader_with_readers_queued_behind_it(
    pg: Cluster, sessions: Sessions, accounts: str
) -> None:
    reader = sessions.send("report", "SELECT count(*), pg_sleep(60) FROM accounts")
    wait_for_active(pg, [reader])
    wait_until_locked(pg, reader, "accounts")
    ddl = sessions.send("migrate", "ALTER TABLE accounts ADD COLUMN note text")
    wait_for_lock_waits(pg, [ddl])
    readers = []
    for i in range(3):
        readers.append(sessions.send(f"web{i}", "SELECT * FROM accounts WHERE id = 2"))
        wait_for_lock_waits(pg, [ddl, *readers])

    _, doc = locks_json(pg)
    check_against_server(pg, doc)
    w = by_pid(doc)
    assert (w[ddl]["locktype"], w[ddl]["mode"], w[ddl]["object"]) == (
        "relation",
        "AccessExclusiveLock",
        accounts,
    )
    assert w[ddl]["blocked_by"] == [reader]
    for pid in readers:
        assert (w[pid]["mode"], w[pid]["object"]) == ("AccessShareLock", accounts)
        assert w[pid]["blocked_by"] == [ddl]  # behind the DDL in the queue, not behind the reader
    (root,) = doc["roots"]
    assert (root["pid"], root["state"], root["blocks_direct"], root["blocks_total"]) == (
        reader,
        "active",
        1,
        4,
    )
    assert root["action"] == f"SELECT pg_cancel_backend({reader});"  # a running statement: cancel it
    (tree,) = doc["trees"]
    assert tree["pid"] == reader
    assert [c["pid"] for c in tree["children"]] == [ddl]
    assert sorted(c["pid"] for c in tree["children"][0]["children"]) == sorted(readers)

    for fmt in ("plain", "table", "markdown"):
        out = run_cli("locks", "-d", pg.dsn(), "--format", fmt)
        assert out.returncode == 0, out.stderr
        assert f"SELECT pg_cancel_backend({reader});" in out.stdout
        assert "AccessExclusiveLock" in out.stdout
    assert pg.sql("SELECT state FROM pg_stat_activity WHERE pid = %s", [reader]) == [("active",)]


def wait_until_locked(pg: Cluster, pid: int, table: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if pg.sql(
            "SELECT 1 FROM pg_locks WHERE pid = %s AND relation = %s::regclass AND granted", [pid, table]
        ):
            return
        time.sleep(0.05)
    raise TimeoutError(f"pid {pid} never locked {table}")


def test_advisory_locks_are_named_by_key(pg: Cluster, sessions: Sessions) -> None:
    # session-level advisory locks held by an idle session (no transaction): terminate, not cancel
    holder = sessions.idle("jobs_leader")[0]
    conn = next(c for c in sessions.conns if c.info.backend_pid == holder)
    conn.execute("SELECT pg_advisory_lock(-5000000000), pg_advisory_lock(7, -3)")
    big = sessions.send("jobs_worker", "SELECT pg_advisory_lock(-5000000000)")
    pair = sessions.send("jobs_worker", "SELECT pg_advisory_xact_lock(7, -3)")
    wait_for_lock_waits(pg, [big, pair])

    _, doc = locks_json(pg)
    check_against_server(pg, doc)
    w = by_pid(doc)
    assert (w[big]["locktype"], w[big]["mode"], w[big]["object"]) == (
        "advisory",
        "ExclusiveLock",
        "advisory key -5000000000",
    )
    assert w[pair]["object"] == "advisory keys (7, -3)"
    (root,) = doc["roots"]
    assert (root["pid"], root["state"], root["blocks_total"]) == (holder, "idle", 2)
    assert root["action"] == f"SELECT pg_terminate_backend({holder});"


def test_one_session_blocked_by_two(pg: Cluster, sessions: Sessions, accounts: str) -> None:
    a = sessions.idle_in_transaction("sync_a", "LOCK TABLE accounts IN ROW SHARE MODE")
    b = sessions.idle_in_transaction("sync_b", "LOCK TABLE accounts IN SHARE MODE")
    c = sessions.send("exporter", "BEGIN; LOCK TABLE accounts IN EXCLUSIVE MODE")
    wait_for_lock_waits(pg, [c])

    _, doc = locks_json(pg)
    check_against_server(pg, doc)
    (waiter,) = doc["waiting"]
    assert sorted(waiter["blocked_by"]) == sorted([a, b])
    assert (waiter["mode"], waiter["object"]) == ("ExclusiveLock", accounts)
    assert sorted(r["pid"] for r in doc["roots"]) == sorted([a, b])
    assert all(r["blocks_total"] == 1 for r in doc["roots"])
    # drawn in full under the first blocker, marked as waiting on the other; listed under the other
    first, second = doc["trees"]
    (child,) = first["children"]
    assert (child["pid"], child["also_blocked_by"]) == (c, [second["pid"]])
    assert (second["children"], second["also_blocks"]) == ([], [c])
    plain = run_cli("locks", "-d", pg.dsn(), "--format", "plain").stdout
    assert f"also waits on {second['pid']}" in plain
    assert f"also blocks pid {c} exporter (drawn in full elsewhere)" in plain


def test_deadlock_cycle_is_shown_not_followed(pg: Cluster, sessions: Sessions, accounts: str) -> None:
    conns = []
    for app, row in (("left", 1), ("right", 2)):
        conn = sessions.open(app)
        conn.execute("SET deadlock_timeout = '2min'")  # keep the detector away while we look
        conn.execute("BEGIN")
        conn.execute(f"UPDATE accounts SET balance = 1 WHERE id = {row}".encode())
        conns.append(conn)
    conns[0].pgconn.send_query(b"UPDATE accounts SET balance = 2 WHERE id = 2")
    conns[1].pgconn.send_query(b"UPDATE accounts SET balance = 2 WHERE id = 1")
    pids = sorted(c.info.backend_pid for c in conns)
    wait_for_lock_waits(pg, pids)

    _, doc = locks_json(pg)
    check_against_server(pg, doc)
    assert doc["roots"] == []
    assert doc["cycles"] == [pids]
    (tree,) = doc["trees"]
    assert tree["pid"] == pids[0]
    assert tree["cycle"] is True
    (child,) = tree["children"]
    assert (child["pid"], child["children"], child["cycle_to"]) == (pids[1], [], [pids[0]])
    assert any(f["code"] == "deadlock_cycle" and f["pids"] == pids for f in doc["findings"])
    plain = run_cli("locks", "-d", pg.dsn(), "--format", "plain").stdout
    assert f"deadlock cycle {pids[0]} -> {pids[1]}" in plain
    assert f"blocks pid {pids[0]} left, further up this branch: a cycle" in plain


def test_deadlock_of_four_sessions_names_them_all(pg: Cluster, sessions: Sessions) -> None:
    # issue 17: s1 waits on s3 and s4, s2 on s1, s3 on s2, s4 on s2 and s3: three cycles (1-3-2, 1-4-2,
    # 1-4-3-2) in one group of four. Transaction-level advisory locks, one waiter per key, so the
    # server's answer is exactly these pairs: a waits on the holders of the key it asks for.
    a, b, c, d = 9171, 9172, 9173, 9174
    held = {  # session: keys held exclusively, keys held shared; then the key it waits for
        "s1": ([a], [], d),
        "s2": ([b], [c], a),
        "s3": ([], [c, d], b),
        "s4": ([], [d], c),
    }
    conns = {}
    for app, (exclusive, shared, _) in held.items():
        conn = sessions.open(app)
        conn.execute("SET deadlock_timeout = '5min'")  # keep the detector away while we look
        conn.execute("BEGIN")
        for key in exclusive:
            conn.execute(f"SELECT pg_advisory_xact_lock({key})".encode())
        for key in shared:
            conn.execute(f"SELECT pg_advisory_xact_lock_shared({key})".encode())
        conns[app] = conn
    for app, (_, _, key) in held.items():
        conns[app].pgconn.send_query(f"SELECT pg_advisory_xact_lock({key})".encode())
        conns[app].pgconn.flush()
    pid = {app: conn.info.backend_pid for app, conn in conns.items()}
    wait_for_lock_waits(pg, pid.values())
    expected = {
        pid["s1"]: {pid["s3"], pid["s4"]},
        pid["s2"]: {pid["s1"]},
        pid["s3"]: {pid["s2"]},
        pid["s4"]: {pid["s2"], pid["s3"]},
    }
    assert server_pairs(pg) == expected

    _, doc = locks_json(pg)
    assert server_pairs(pg) == expected  # still the same state after pgdoctor looked
    check_against_server(pg, doc)
    everyone = sorted(pid.values())
    assert doc["roots"] == []
    assert doc["cycles"] == [everyone]  # all four, s4 included
    # s1 and s2 are on every cycle: the smaller pid is named
    assert doc["deadlocks"] == [
        {"pids": everyone, "breaks_all": min(pid["s1"], pid["s2"]), "breaks_all_checked": True}
    ]
    (finding,) = [f for f in doc["findings"] if f["code"] == "deadlock_cycle"]
    assert finding["pids"] == everyone
    assert all(str(p) in finding["message"] for p in everyone)
    assert f"end pid {min(pid['s1'], pid['s2'])}: it is on every cycle" in finding["advice"]
    (tree,) = doc["trees"]
    assert (tree["pid"], tree["cycle"]) == (everyone[0], True)
    plain = run_cli("locks", "-d", pg.dsn(), "--format", "plain").stdout
    assert "deadlock of 4 sessions in intertwined cycles" in plain
    # its action, run as an operator would (pgdoctor never does), cancels the one on every cycle: every
    # cycle is gone and no session disconnected
    breaker = min(pid["s1"], pid["s2"])
    assert finding["action"].startswith(
        f"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE pid = {breaker} AND"
    )
    assert pg.sql(finding["action"]) == [(True,)]
    aborted = "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND state = 'idle in transaction (aborted)'"
    wait_until(lambda: bool(pg.sql(aborted, [breaker])), 30, "the cancelled statement to end")
    _, after = locks_json(pg)
    assert after["cycles"] == []
    assert {r[0] for r in pg.sql("SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", [everyone])} == set(
        everyone
    )


def test_objects_in_other_databases_and_catalogs(pg: Cluster, sessions: Sessions) -> None:
    ensure_database(pg, "lockdb")
    pg.sql("DROP TABLE IF EXISTS far; CREATE TABLE far (id int)", dbname="lockdb")
    oid = pg.sql("SELECT 'far'::regclass::oid::int", dbname="lockdb")[0][0]
    sessions.idle_in_transaction("far_holder", "LOCK TABLE far IN ACCESS EXCLUSIVE MODE", dbname="lockdb")
    far_waiter = sessions.send("far_reader", "SELECT * FROM far", dbname="lockdb")
    pg.sql("DROP SCHEMA IF EXISTS staging CASCADE; CREATE SCHEMA staging")
    sessions.idle_in_transaction("schema_user", "CREATE TABLE staging.t (id int)")
    dropper = sessions.send("schema_dropper", "DROP SCHEMA staging CASCADE")
    wait_for_lock_waits(pg, [far_waiter, dropper])

    _, doc = locks_json(pg)
    check_against_server(pg, doc)
    w = by_pid(doc)
    assert w[far_waiter]["object"] == f"relation {oid} in database lockdb (not resolvable from here)"
    assert (w[dropper]["locktype"], w[dropper]["mode"], w[dropper]["object"]) == (
        "object",
        "AccessExclusiveLock",
        "schema staging",
    )


def waited(pg: Cluster, pid: int) -> float:
    """How long `pid` has waited for its lock, by the server's clock (pg_locks.waitstart, 14+)."""
    rows = pg.sql(
        "SELECT extract(epoch FROM clock_timestamp() - waitstart) FROM pg_locks "
        "WHERE pid = %s AND NOT granted",
        [pid],
    )
    return float(rows[0][0])


def test_min_wait_hides_short_waits(pg: Cluster, sessions: Sessions, accounts: str) -> None:
    min_wait = "8"  # leaves two pgdoctor runs on a slow, busy machine the time to see the young wait short
    holder = sessions.idle_in_transaction("billing", "UPDATE accounts SET balance = 1 WHERE id = 3")
    old = sessions.send("old", "UPDATE accounts SET balance = 2 WHERE id = 3")
    wait_for_lock_waits(pg, [old])
    wait_until(lambda: waited(pg, old) > float(min_wait) + 1, 60, "the old wait to grow long")
    sessions.idle_in_transaction("adv", "SELECT pg_advisory_xact_lock(1)")
    young = sessions.send("young", "SELECT pg_advisory_xact_lock(1)")
    wait_for_lock_waits(pg, [young])

    # the short wait first, while it is still short
    plain = run_cli("locks", "-d", pg.dsn(), "--format", "plain", "--min-wait", min_wait).stdout
    _, doc = locks_json(pg, "--min-wait", min_wait)
    assert waited(pg, young) < float(min_wait), "the premise: both runs saw the young wait short"
    _, everything = locks_json(pg)
    assert f"hidden by --min-wait {min_wait}" in plain
    assert f"pid {young}" not in plain
    assert f"pid {old}" in plain
    assert [x["pid"] for x in doc["waiting"]] == [old]
    assert [r["pid"] for r in doc["roots"]] == [holder]
    assert doc["min_wait_s"] == float(min_wait)
    assert {old, young} <= set(by_pid(everything))


def test_all_summarises_the_lock_table_like_the_server(
    pg: Cluster, sessions: Sessions, accounts: str
) -> None:
    sessions.idle_in_transaction("holder", "LOCK TABLE accounts IN SHARE MODE")
    waiter = sessions.send("writer", "UPDATE accounts SET balance = 3 WHERE id = 4")
    adv = sessions.idle_in_transaction(
        "adv", "SELECT pg_advisory_xact_lock(g) FROM generate_series(1, 300) g"
    )
    wait_for_lock_waits(pg, [waiter])

    _, doc = locks_json(pg, "--all")
    rows = {(s["locktype"], s["object"], s["mode"]): s for s in doc["summary"]}
    server = pg.sql(
        "SELECT mode, count(*) FILTER (WHERE granted)::int, count(*) FILTER (WHERE NOT granted)::int "
        "FROM pg_locks WHERE relation = 'accounts'::regclass AND locktype = 'relation' GROUP BY mode"
    )
    for mode, held, awaited in server:
        row = rows[("relation", accounts, mode)]
        assert (row["held"], row["awaited"]) == (held, awaited)
    assert rows[("relation", accounts, "RowExclusiveLock")]["awaited"] == 1
    advisory = rows[("advisory", "database postgres", "ExclusiveLock")]
    assert advisory["held"] == 300 and advisory["sessions"] == 1
    assert doc["lock_table"]["entries"] >= 300
    assert doc["lock_table"]["capacity"] == int(
        pg.sql(
            "SELECT current_setting('max_locks_per_transaction')::int * "
            "(current_setting('max_connections')::int + current_setting('max_prepared_transactions')::int)"
        )[0][0]
    )
    del adv
    _, without = locks_json(pg)
    assert without["summary"] is None
    plain = run_cli("locks", "-d", pg.dsn(), "--format", "plain", "--all").stdout
    assert "Lock table by type, object and mode" in plain


def test_lock_table_pressure(pg: Cluster, sessions: Sessions) -> None:
    capacity = pg.sql(
        "SELECT current_setting('max_locks_per_transaction')::int * "
        "(current_setting('max_connections')::int + current_setting('max_prepared_transactions')::int)"
    )[0][0]
    n = int(capacity * 0.85)
    sessions.idle_in_transaction(
        "bulk", f"SELECT count(pg_advisory_xact_lock(g)) FROM generate_series(1, {n}) g"
    )
    _, doc = locks_json(pg, "--all")
    (f,) = [f for f in doc["findings"] if f["code"] == "lock_table_pressure"]
    assert f["severity"] == "warning"
    assert doc["lock_table"]["shared_entries"] >= n
    assert doc["lock_table"]["usage_pct"] >= 85


def test_pg_locks_is_read_once_and_only_when_someone_waits(
    pg: Cluster, sessions: Sessions, accounts: str
) -> None:
    pg.sql("SELECT pg_stat_statements_reset()")
    doc = locks_json(pg)[1]
    assert doc["waiting"] == [] and doc["details"] is True
    assert statements_on_pg_locks(pg) == 0  # nobody waits: only the blocking-pids query ran

    sessions.idle_in_transaction("holder", "UPDATE accounts SET balance = 1 WHERE id = 5")
    waiters = [sessions.send(f"w{i}", "UPDATE accounts SET balance = 2 WHERE id = 5") for i in range(5)]
    wait_for_lock_waits(pg, waiters)
    pg.sql("SELECT pg_stat_statements_reset()")
    locks_json(pg)
    assert statements_on_pg_locks(pg) == 1  # one scan for five waiters, not one per waiter

    pg.sql("SELECT pg_stat_statements_reset()")
    _, fast = locks_json(pg, "--fast")
    assert statements_on_pg_locks(pg) == 0
    assert fast["details"] is False
    check_against_server(pg, fast)
    for w in fast["waiting"]:
        assert w["mode"] is None and w["object"] is None
        assert w["locktype"] in ("transactionid", "tuple")  # from wait_event
        assert w["wait_source"] == "query_start"


def test_pg13_variant_runs(pg: Cluster, sessions: Sessions, accounts: str) -> None:
    """PostgreSQL 13 has no waitstart; its file is plain SQL that newer servers run just as well."""
    sessions.idle_in_transaction("holder", "UPDATE accounts SET balance = 1 WHERE id = 6")
    waiter = sessions.send("w", "UPDATE accounts SET balance = 2 WHERE id = 6")
    wait_for_lock_waits(pg, [waiter])
    assert queries.pick("locks_waits", (13, 0)).name == "13.sql"
    with connect(pg.dsn()) as db:
        rows = db.rows(queries.load("locks_waits", (13, 0)), _WaitsRow)
    (row,) = [r for r in rows if r.pid == waiter]
    assert (row.locktype, row.mode, row.wait_s) == ("transactionid", "ShareLock", None)


def test_snapshot_equals_live(pg: Cluster, sessions: Sessions, accounts: str, tmp_path: Path) -> None:
    holder = sessions.idle_in_transaction("billing", "UPDATE accounts SET balance = 1 WHERE id = 7")
    queue = []
    for i in range(3):
        queue.append(sessions.send(f"api{i}", "UPDATE accounts SET balance = 2 WHERE id = 7"))
        wait_for_lock_waits(pg, queue)
    snap = tmp_path / "snap.json"
    saved = run_cli("snapshot", "-d", pg.dsn(), "-o", str(snap))
    assert saved.returncode == 0, saved.stderr
    assert "locks" in json.loads(snap.read_text())["datasets"]
    live_code, live = locks_json(pg, "--fail-on", "critical")
    offline = run_cli("locks", "--snapshot", str(snap), "--format", "json", "--fail-on", "critical")
    assert offline.returncode == live_code == 1
    doc = json.loads(offline.stdout)

    def stable(d: dict[str, Any]) -> dict[str, Any]:
        ages = ("wait_s", "xact_age_s", "state_age_s")
        return {
            "waiting": [{k: v for k, v in w.items() if k not in ages} for w in d["waiting"]],
            "roots": [{k: v for k, v in r.items() if k not in ages} for r in d["roots"]],
            "trees": d["trees"],
            "findings": [(f["code"], f["severity"], f["subject"], f["pids"]) for f in d["findings"]],
        }

    assert stable(doc) == stable(live)
    assert doc["roots"][0]["pid"] == holder
    assert all(json.loads(offline.stdout)["waiting"][i]["wait_s"] is not None for i in range(3))
    offline_all = run_cli("locks", "--snapshot", str(snap), "--format", "plain", "--all")
    assert "Lock table by type, object and mode" in offline_all.stdout


def test_csv_prints_the_waiting_table(pg: Cluster, sessions: Sessions, accounts: str) -> None:
    sessions.idle_in_transaction("billing", "UPDATE accounts SET balance = 1 WHERE id = 8")
    waiter = sessions.send("api", "UPDATE accounts SET balance = 2 WHERE id = 8")
    wait_for_lock_waits(pg, [waiter])
    lines = run_cli("locks", "-d", pg.dsn(), "--format", "csv").stdout.splitlines()
    assert lines[0] == "pid,application,user,waits,lock type,mode,object,blocked by,query"
    assert len(lines) == 2 and lines[1].startswith(f"{waiter},api,postgres,")


def test_privilege_and_bad_input(pg: Cluster, sessions: Sessions, accounts: str) -> None:
    ensure_role(pg, "nobody_special")
    sessions.idle_in_transaction("billing", "UPDATE accounts SET balance = 1 WHERE id = 9")
    waiter = sessions.send("api", "UPDATE accounts SET balance = 2 WHERE id = 9")
    wait_for_lock_waits(pg, [waiter])
    result = run_cli("locks", "-d", pg.dsn(user="nobody_special"), "--format", "json")
    assert result.returncode == 4, result.stderr
    doc = json.loads(result.stdout)
    assert [w["pid"] for w in doc["waiting"]] == [waiter]  # the picture is still drawn
    assert any(f["code"] == "insufficient_privilege" for f in doc["findings"])
    bad = run_cli("locks", "-d", pg.dsn(), "--min-wait", "-1")
    assert bad.returncode == 2
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg.dsn(dbname="no_such_db")).close()
    missing = run_cli("locks", "-d", pg.dsn(dbname="no_such_db"))
    assert missing.returncode == 3 and missing.stderr.startswith("error: ")


@pytest.mark.parametrize("version", VERSIONS)
def test_prepared_transaction_as_root(version: str) -> None:
    """pg_blocking_pids() reports a prepared transaction as pid 0: a root of its own kind."""
    with running_cluster(version, settings={"max_prepared_transactions": 2}, preload=False) as pg:
        pg.sql("CREATE TABLE t (id int PRIMARY KEY, v int)")
        pg.sql("INSERT INTO t VALUES (1, 0)")
        with pg.connect() as conn:
            conn.execute("BEGIN")
            conn.execute("UPDATE t SET v = 1 WHERE id = 1")
            conn.execute("PREPARE TRANSACTION 'nightly'")
        sessions = Sessions(pg)
        try:
            waiter = sessions.send("api", "UPDATE t SET v = 2 WHERE id = 1")
            wait_for_lock_waits(pg, [waiter])
            _, doc = locks_json(pg)
            check_against_server(pg, doc)
            (root,) = doc["roots"]
            assert (root["pid"], root["kind"], root["blocks_total"]) == (0, "prepared", 1)
            assert "pg_prepared_xacts" in root["action"] and "ROLLBACK PREPARED" in root["action"]
            assert doc["waiting"][0]["blocked_by"] == [0]
            plain = run_cli("locks", "-d", pg.dsn(), "--format", "plain").stdout
            assert "a prepared transaction (pid 0)" in plain
        finally:
            pg.sql("ROLLBACK PREPARED 'nightly'")
            sessions.close()
