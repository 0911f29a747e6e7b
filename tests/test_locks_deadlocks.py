"""Deadlocked groups in waits-for graphs, checked against a brute-force computation written here.

The reference knows nothing of Tarjan: a session is deadlocked when it reaches itself; two deadlocked
sessions are in one group when each reaches the other; a session breaks every cycle of its group when
no other member of the group reaches itself once it is gone.
"""

from __future__ import annotations

import io
import json
from collections.abc import Collection, Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pgdoctor.analyze.deadlocks import deadlocked_groups, strongly_connected
from pgdoctor.analyze.locks import analyze
from pgdoctor.collect.activity import ActivityRow
from pgdoctor.collect.locks import LocksData
from pgdoctor.collect.server import ServerInfo
from pgdoctor.render import locks as render
from pgdoctor.render.document import emit
from pgdoctor.render.formats import Format

SERVER = ServerInfo(180000, "18.0", "postgres", True, True, [])

Adjacency = Mapping[int, Collection[int]]


def reaches(adj: Adjacency, start: int, allowed: Collection[int]) -> set[int]:
    """The nodes of `allowed` reached from `start` by one edge or more, through `allowed` only."""
    seen: set[int] = set()
    todo = [q for q in adj.get(start, ()) if q in allowed]
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo.extend(q for q in adj.get(p, ()) if q in allowed)
    return seen


def reference(adj: Adjacency) -> dict[frozenset[int], int | None]:
    """Every deadlocked group, with the smallest of its members that lies on all of its cycles."""
    nodes = set(adj) | {q for qs in adj.values() for q in qs}
    reach = {p: reaches(adj, p, nodes) for p in nodes}
    on_cycle = {p for p in nodes if p in reach[p]}
    groups = {frozenset({p} | {q for q in on_cycle if q in reach[p] and p in reach[q]}) for p in on_cycle}
    out: dict[frozenset[int], int | None] = {}
    for group in groups:
        breakers = [v for v in group if not any(u in reaches(adj, u, group - {v}) for u in group - {v})]
        out[group] = min(breakers, default=None)
    return out


def check(adj: Adjacency) -> None:
    groups = deadlocked_groups(adj)
    expected = reference(adj)
    assert {frozenset(g.pids): g.breaks_all for g in groups} == expected
    reported = [p for g in groups for p in g.pids]
    assert len(reported) == len(set(reported))  # every deadlocked node in exactly one group
    assert [min(g.pids) for g in groups] == sorted(min(g) for g in expected)  # stable order
    for g in groups:
        assert g.breaks_all_checked
        if g.simple:  # one cycle: in wait order from its smallest pid
            assert g.pids[0] == min(g.pids)
            assert all(b in adj[a] for a, b in zip(g.pids, g.pids[1:] + g.pids[:1], strict=True))
        else:
            assert list(g.pids) == sorted(g.pids)


@st.composite
def adjacencies(draw: Any, self_loops: bool = True) -> dict[int, list[int]]:
    n = draw(st.integers(1, 14))
    pids = list(range(100, 100 + n)) + ([7] if draw(st.booleans()) else [])  # 7: waits on nobody
    degree = draw(st.integers(1, 5))
    adj: dict[int, list[int]] = {}
    for p in pids[:n]:
        targets = [q for q in pids if self_loops or q != p]
        adj[p] = draw(st.lists(st.sampled_from(targets), max_size=degree, unique=True)) if targets else []
    return adj


@settings(max_examples=1500, deadline=None)
@given(adjacencies())
def test_groups_and_breakers_match_brute_force(adj: dict[int, list[int]]) -> None:
    check(adj)


def test_known_shapes() -> None:
    # the four sessions: 1 waits on 3 and 4, 2 on 1, 3 on 2, 4 on 2 and 3; 1 and 2 are on
    # all three cycles (1-3-2, 1-4-2, 1-4-3-2)
    (g,) = deadlocked_groups({1: [3, 4], 2: [1], 3: [2], 4: [2, 3]})
    assert (g.pids, g.simple, g.breaks_all, g.breaks_all_checked) == ((1, 2, 3, 4), False, 1, True)
    # two cycles through 5 only, and a separate one: two groups, each with its breaker
    groups = deadlocked_groups({5: [6, 8], 6: [5], 8: [5], 20: [21], 21: [20], 30: [20]})
    assert [(g.pids, g.breaks_all) for g in groups] == [((5, 6, 8), 5), ((20, 21), 20)]
    # a simple cycle is in wait order: 3 waits on 1, 1 on 2, 2 on 3
    (g,) = deadlocked_groups({3: [1], 1: [2], 2: [3]})
    assert (g.pids, g.simple, g.breaks_all) == ((1, 2, 3), True, 1)
    # two cycles sharing no node but joined by edges both ways: no single breaker
    (g,) = deadlocked_groups({1: [2], 2: [1, 3], 3: [4], 4: [3, 1]})
    assert (g.pids, g.breaks_all, g.breaks_all_checked) == ((1, 2, 3, 4), None, True)
    assert deadlocked_groups({1: [2], 2: [3], 3: []}) == []


def test_budget_is_reported_not_overrun() -> None:
    adj = {1: [3, 4], 2: [1], 3: [2], 4: [2, 3]}
    (g,) = deadlocked_groups(adj, budget=1)
    assert (g.pids, g.breaks_all, g.breaks_all_checked) == ((1, 2, 3, 4), None, False)
    data = LocksData(SERVER, [session(p, qs) for p, qs in adj.items()], None, None, None)
    report = analyze(data)
    assert report.deadlocks[0].breaks_all == 1
    (f,) = [f for f in report.findings if f.code == "deadlock_cycle"]
    assert "end pid 1: it is on every cycle of the group" in f.advice


def test_large_graphs_without_recursion() -> None:
    # one cycle of 50,000 sessions with a chord through a hub: far past Python's recursion limit
    n = 50_000
    adj: dict[int, list[int]] = {p: [p + 1] for p in range(1, n)}
    adj[n] = [1]
    (g,) = deadlocked_groups(adj)
    assert (len(g.pids), g.simple, g.breaks_all) == (n, True, 1)
    adj[n // 2] = [n // 2 + 1, 1]  # a shortcut: 1 .. n/2 is on both cycles, the smallest is 1
    (g,) = deadlocked_groups(adj)
    assert (g.pids, g.simple, g.breaks_all) == (tuple(range(1, n + 1)), False, 1)
    # a ring with a bypass round every member: no member is on every cycle
    k = 3000
    ring: dict[int, list[int]] = {i: [(i + 1) % k, k + (i + 1) % k] for i in range(k)}
    ring.update({k + i: [(i + 1) % k] for i in range(k)})  # bypass of i: from i - 1 to i + 1
    (g,) = deadlocked_groups(ring)
    assert (len(g.pids), g.breaks_all, g.breaks_all_checked) == (2 * k, None, True)
    assert len(strongly_connected(range(n), lambda p: [p + 1] if p + 1 < n else [])) == n


def session(pid: int, blocked_by: list[int]) -> ActivityRow:
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
        state="active" if blocked_by else "idle in transaction",
        wait_event_type="Lock" if blocked_by else None,
        wait_event="advisory" if blocked_by else None,
        xact_age_s=float(pid),
        query_age_s=float(pid),
        state_age_s=float(pid),
        query=f"SELECT {pid}",
        blocked_by=blocked_by,
    )


@settings(max_examples=500, deadline=None)
@given(adjacencies(self_loops=False))  # pg_blocking_pids() never names the session itself
def test_report_names_every_deadlocked_session(adj: dict[int, list[int]]) -> None:
    data = LocksData(SERVER, [session(p, qs) for p, qs in adj.items()], None, None, None)
    report = analyze(data)
    expected = reference(adj)
    assert {frozenset(c): None for c in report.cycles} == dict.fromkeys(expected)
    findings = [f for f in report.findings if f.code == "deadlock_cycle"]
    assert len(findings) == len(report.deadlocks)
    for group, f in zip(report.deadlocks, findings, strict=True):  # all critical: in the groups' order
        assert set(group.pids) <= set(f.pids)
        assert all(str(p) in f.message for p in group.pids)
        breaker = expected[frozenset(group.pids)]
        assert group.breaks_all == breaker
        if breaker is not None and not group.simple:
            assert f"end pid {breaker}: it is on every cycle" in f.advice
        elif breaker is None:
            assert "no one session is on every cycle" in f.advice
    doc = render.to_json(report)
    json.dumps(doc)
    assert doc["cycles"] == [list(g.pids) for g in report.deadlocks]
    assert [(d["pids"], d["breaks_all"]) for d in doc["deadlocks"]] == [
        (list(g.pids), expected[frozenset(g.pids)]) for g in report.deadlocks
    ]
    out = io.StringIO()
    emit(render.document(report), Format.PLAIN, out)
    text = out.getvalue()
    if report.deadlocks:
        assert f"and {len(report.deadlocks)} deadlocked group(s)" in text
