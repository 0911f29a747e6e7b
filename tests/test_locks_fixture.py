"""Analysis and rendering of recorded lock pile-ups (fixtures/locks-pg*.json), without a server.

The fixtures were recorded by scripts/record_locks_fixtures.py on real PostgreSQL 15 and 18; the
expectations below are derived from the recorded pg_blocking_pids() answers, not typed in.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgdoctor.analyze.lock_graph import TreeNode
from pgdoctor.analyze.lock_objects import advisory_key
from pgdoctor.analyze.locks import LocksReport, analyze
from pgdoctor.collect.activity import ActivityRow
from pgdoctor.collect.locks import LocksData
from pgdoctor.collect.server import ServerInfo
from pgdoctor.render import locks as render
from pgdoctor.render.document import emit
from pgdoctor.render.formats import Format
from pgdoctor.snapshot import load_dataset
from tests.conftest import FIXTURES

RECORDED = sorted(FIXTURES.glob("locks-pg*.json"))


@pytest.fixture(params=RECORDED, ids=[p.stem for p in RECORDED])
def recorded(request: pytest.FixtureRequest) -> LocksData:
    path: Path = request.param
    return load_dataset(path, "locks", LocksData)


def edges_drawn(trees: list[TreeNode]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []

    def walk(node: TreeNode) -> None:
        for child in node.children:
            out.append((node.pid, child.pid))
            walk(child)
        out.extend((node.pid, p) for p in node.also_blocks + node.cycle_to)

    for t in trees:
        walk(t)
    return out


def full_appearances(trees: list[TreeNode]) -> list[int]:
    out: list[int] = []

    def walk(node: TreeNode) -> None:
        out.append(node.pid)
        for child in node.children:
            walk(child)

    for t in trees:
        walk(t)
    return out


def reachable(data: LocksData, start: int) -> set[int]:
    kids: dict[int, set[int]] = {}
    for s in data.activity:
        for b in s.blocked_by:
            kids.setdefault(b, set()).add(s.pid)
    seen: set[int] = set()
    stack = list(kids.get(start, ()))
    while stack:
        p = stack.pop()
        if p not in seen:
            seen.add(p)
            stack.extend(kids.get(p, ()))
    seen.discard(start)
    return seen


def test_both_versions_are_recorded() -> None:
    assert [p.name for p in RECORDED] == ["locks-pg15.json", "locks-pg18.json"]


def test_trees_hold_every_recorded_blocking_pair_once(recorded: LocksData) -> None:
    report = analyze(recorded)
    pairs = sorted((b, s.pid) for s in recorded.activity for b in s.blocked_by)
    assert sorted(edges_drawn(report.trees)) == pairs
    drawn = full_appearances(report.trees)
    assert len(drawn) == len(set(drawn))  # every session drawn in full exactly once
    assert set(drawn) == {b for b, _ in pairs} | {w for _, w in pairs}


def test_roots_and_their_totals(recorded: LocksData) -> None:
    report = analyze(recorded)
    by_pid = {s.pid: s for s in recorded.activity}
    blockers = {b for s in recorded.activity for b in s.blocked_by}
    expected = {b for b in blockers if not by_pid[b].blocked_by}
    assert {r.pid for r in report.roots} == expected
    for r in report.roots:
        assert r.blocks_total == len(reachable(recorded, r.pid))
        assert r.blocks_direct == sum(r.pid in s.blocked_by for s in recorded.activity)
        if r.state in ("idle in transaction", "idle"):
            assert r.action == f"SELECT pg_terminate_backend({r.pid});"
        else:
            assert r.action == f"SELECT pg_cancel_backend({r.pid});"
    apps = {r.application_name for r in report.roots}
    assert apps == {"billing", "reporting", "jobs_leader", "sync_a", "sync_b"}
    # the cycle has no root: it is found and drawn once, closing on itself
    (cycle,) = report.cycles
    assert {by_pid[p].application_name for p in cycle} == {"left", "right"}
    assert report.trees[-1].cycle and report.trees[-1].pid == cycle[0]


def test_every_lock_is_named(recorded: LocksData) -> None:
    report = analyze(recorded)
    assert recorded.waits is not None
    by_app: dict[str, set[tuple[str, str | None, str | None]]] = {}
    for w in report.waiting:
        by_app.setdefault(w.application_name, set()).add((w.locktype, w.mode, w.object))
        assert w.wait_source == "waitstart" and (w.wait_s or 0) > 10  # the fixture aged 20 s
    assert by_app["migration"] == {("relation", "AccessExclusiveLock", "public.events")}
    assert by_app["web"] == {("relation", "AccessShareLock", "public.events")}
    assert by_app["jobs_worker"] == {
        ("advisory", "ExclusiveLock", "advisory key -5000000000"),
        ("advisory", "ExclusiveLock", "advisory keys (7, -3)"),
    }
    assert by_app["exporter"] == {("relation", "ExclusiveLock", "public.ledger")}
    api = sorted(by_app["job_api"])
    assert api[0][0] == "transactionid" and api[0][2].startswith("transaction ")  # type: ignore[union-attr]
    assert {(t, m, o) for t, m, o in api[1:]} == {("tuple", "ExclusiveLock", "public.jobs (0,1)")}


def test_findings(recorded: LocksData) -> None:
    report = analyze(recorded)
    codes = [(f.code, f.subject) for f in report.findings]
    idle_roots = {r.application_name for r in report.roots if r.state == "idle in transaction"}
    assert {s for c, s in codes if c == "idle_in_transaction_blocker"} == idle_roots
    assert report.findings[0].severity.value == "critical"
    assert {s for c, s in codes if c == "long_wait"} == {r.application_name for r in report.roots}
    assert ("deadlock_cycle", "server") in codes
    # thresholds are options: the same data, quieter or louder
    quiet = analyze(recorded, wait_warn_s=3600, wait_crit_s=7200)
    assert not any(f.code == "long_wait" for f in quiet.findings)
    loud = analyze(recorded, wait_crit_s=1, queue_warn=3)
    assert all(f.severity.value == "critical" for f in loud.findings if f.code == "long_wait")
    queue = {f.subject: f for f in loud.findings if f.code == "lock_queue"}
    assert set(queue) == {"public.events", "public.jobs (0,1)"}  # 4 on the table, 3 on the tuple
    assert len(queue["public.events"].pids) == 4


def test_min_wait(recorded: LocksData) -> None:
    waits = sorted(w.wait_s or 0 for w in analyze(recorded).waiting)
    cut = (waits[len(waits) // 2] + waits[len(waits) // 2 + 1]) / 2 if waits[-1] > waits[0] else waits[0] + 1
    report = analyze(recorded, min_wait_s=cut)
    assert all((w.wait_s or 0) >= cut for w in report.waiting)
    assert report.hidden_waiters == sum(x < cut for x in waits)
    # the chains of what is left stay whole: every shown waiter still reaches a root or a cycle
    pairs = sorted((b, w.pid) for w in report.waiter_index.values() for b in w.blocked_by)
    assert sorted(edges_drawn(report.trees)) == pairs
    everything = analyze(recorded, min_wait_s=max(waits) + 1)
    assert everything.waiting == [] and everything.trees == [] and everything.roots == []


@pytest.mark.parametrize("fmt", [Format.TABLE, Format.PLAIN, Format.MARKDOWN, Format.CSV])
def test_renders_in_every_format(recorded: LocksData, fmt: Format, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # a wide terminal: rich would cut cells to fit 80 columns
    report = analyze(recorded)
    out = io.StringIO()
    emit(render.document(report, show_all=True), fmt, out)
    text = out.getvalue()
    if fmt is Format.CSV:
        lines = text.splitlines()
        assert lines[0] == "pid,application,user,waits,lock type,mode,object,blocked by,query"
        assert len(lines) == 1 + len(report.waiting)
        return
    for r in report.roots:
        assert r.action in text
    assert "advisory key -5000000000" in text
    assert "Lock table by type, object and mode" in text
    if fmt is Format.MARKDOWN:
        assert "## Who blocks whom" in text
        assert "\n  - pid " in text  # nested lists
    if fmt is Format.TABLE:
        assert "└── pid" in text or "├── pid" in text  # a rich tree


def test_json_contract(recorded: LocksData) -> None:
    doc = render.to_json(analyze(recorded), show_all=True)
    json.dumps(doc)
    assert doc["command"] == "locks"
    assert set(doc["waiting"][0]) >= {
        "pid", "application_name", "blocked_by", "wait_s", "locktype", "mode", "object", "query"
    }  # fmt: skip
    assert set(doc["roots"][0]) >= {
        "pid", "application_name", "state", "xact_age_s", "blocks_total", "query", "action"
    }  # fmt: skip
    assert set(doc["findings"][0]) == {"severity", "code", "subject", "message", "advice", "pids", "action"}
    assert set(doc["lock_table"]) == {
        "entries",
        "shared_entries",
        "fastpath_entries",
        "capacity",
        "usage_pct",
    }
    assert doc["summary"] and set(doc["summary"][0]) >= {"locktype", "object", "mode", "held", "awaited"}
    assert render.to_json(analyze(recorded))["summary"] is None


# Random waits-for graphs: the trees terminate on cycles, draw every pair exactly once and count right.

SERVER = ServerInfo(180000, "18.0", "postgres", True, True, [])


def session(pid: int, blocked_by: list[int], state: str) -> ActivityRow:
    return ActivityRow(
        pid=pid,
        backend_type="client backend",
        datname="app",
        usename="app",
        application_name=f"app{pid % 3}",
        client_addr=None,
        client_hostname=None,
        backend_age_s=None,
        xmin_age=None,
        state=state,
        wait_event_type="Lock" if blocked_by else None,
        wait_event="relation" if blocked_by else None,
        xact_age_s=float(pid),
        query_age_s=float(pid),
        state_age_s=float(pid),
        query=f"SELECT {pid}",
        blocked_by=blocked_by,
    )


@st.composite
def graphs(draw: Any) -> LocksData:
    n = draw(st.integers(2, 12))
    pids = list(range(100, 100 + n))
    sessions = []
    for pid in pids:
        blockers = draw(st.lists(st.sampled_from([p for p in pids if p != pid]), max_size=3, unique=True))
        state = "active" if blockers else draw(st.sampled_from(["idle in transaction", "active", "idle"]))
        sessions.append(session(pid, blockers, state))
    return LocksData(server=SERVER, activity=sessions, waits=None, lock_table=None, summary=None)


@settings(max_examples=300, deadline=None)
@given(graphs())
def test_trees_on_any_graph(data: LocksData) -> None:
    report: LocksReport = analyze(data)
    pairs = sorted((b, s.pid) for s in data.activity for b in s.blocked_by)
    assert sorted(edges_drawn(report.trees)) == pairs
    drawn = full_appearances(report.trees)
    assert len(drawn) == len(set(drawn))
    for r in report.roots:
        assert r.blocks_total == len(reachable(data, r.pid))
    by_pid = {s.pid: s for s in data.activity}
    for group in report.deadlocks:  # tests/test_locks_deadlocks.py checks the groups themselves
        if group.simple:
            cycle = list(group.pids)
            for a, b in zip(cycle, cycle[1:] + cycle[:1], strict=True):
                assert b in by_pid[a].blocked_by  # a real cycle: each waits on the next
    out = io.StringIO()
    emit(render.document(report), Format.PLAIN, out)
    json.dumps(render.to_json(report))


def test_advisory_keys() -> None:
    # pg_advisory_lock(bigint) splits the key: classid = high 32 bits, objid = low 32 bits, objsubid 1
    key = -5000000000
    u = key & 0xFFFFFFFFFFFFFFFF
    assert advisory_key(u >> 32, u & 0xFFFFFFFF, 1) == f"advisory key {key}"
    assert advisory_key(7, (-3) & 0xFFFFFFFF, 2) == "advisory keys (7, -3)"


@settings(max_examples=200, deadline=None)
@given(graphs())
def test_connections_names_the_root_blockers_locks_does(data: LocksData) -> None:
    """One root-blocker analysis: over all its `blocked` findings, `connections` names exactly the root
    blockers `locks` heads its trees with (every waiter here is a client session waiting on a lock)."""
    import re

    from pgdoctor.analyze.connections import analyze as analyze_connections
    from pgdoctor.collect.connections import ConnectionsData

    report = analyze_connections(ConnectionsData(server=data.server, activity=data.activity))
    named: set[int] = set()
    for f in report.findings:
        if f.code == "blocked" and "root blocker(s): " in f.message:
            named |= {int(p) for p in re.findall(r"(\d+) \(", f.message.split("root blocker(s): ")[1])}
    assert named == {r.pid for r in analyze(data).roots}
