"""Who blocks whom: the waits-for graph from pg_blocking_pids(), as trees under root blockers.

A root blocker blocks others and waits on nobody. Every waiting session hangs under each session it
waits on (marked when it waits on several); a cycle (a deadlock the detector has not broken yet) is
shown once and never followed round.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from pgdoctor.analyze import actions
from pgdoctor.analyze.activity import lock_picture, waiting
from pgdoctor.analyze.common import HIDDEN_QUERY, insufficient_privilege
from pgdoctor.analyze.deadlocks import DeadlockGroup
from pgdoctor.analyze.findings import Finding, Severity, sort_findings
from pgdoctor.analyze.format import duration
from pgdoctor.analyze.lock_graph import PREPARED, Graph, TreeNode, Waiter, apply_min_wait
from pgdoctor.analyze.lock_objects import object_name
from pgdoctor.analyze.sessions import to_session
from pgdoctor.analyze.thresholds import (
    IDLE_XACT_CRIT_S,
    LOCK_PRESSURE_CRIT_PCT,
    LOCK_PRESSURE_WARN_PCT,
    LOCK_QUEUE_CRIT,
    LOCK_QUEUE_WARN,
    LOCK_WAIT_CRIT_S,
    LOCK_WAIT_WARN_S,
)
from pgdoctor.collect.activity import ActivityRow
from pgdoctor.collect.locks import LocksData, LockTableStats, SummaryRow, WaitLock
from pgdoctor.collect.server import ServerInfo

IDLE_IN_XACT = ("idle in transaction", "idle in transaction (aborted)")


@dataclass(frozen=True)
class Root:
    """A session at the head of a wait chain (or standing for a cycle)."""

    pid: int
    application_name: str | None
    usename: str | None
    datname: str | None
    backend_type: str | None
    state: str | None
    xact_age_s: float | None
    state_age_s: float | None
    query: str | None
    blocks_direct: int
    blocks_total: int
    action: str  # the SQL an operator could run; pgdoctor never runs it
    kind: str  # "session", "prepared" (pid 0), "gone" (not in pg_stat_activity any more), "cycle"


@dataclass(frozen=True)
class LockTablePressure:
    entries: int
    fastpath_entries: int
    shared_entries: int  # entries in the shared lock table (fast-path ones are kept per backend)
    capacity: int  # max_locks_per_transaction * (max_connections + max_prepared_transactions)
    usage_pct: float


@dataclass(frozen=True)
class LocksReport:
    server: ServerInfo
    details: bool  # pg_locks was read for the waiting locks
    waiting: list[Waiter]  # the ones shown, longest wait first
    waiter_index: dict[int, Waiter]  # every waiter in the trees, by pid (with --min-wait's links)
    roots: list[Root]
    trees: list[TreeNode]
    deadlocks: list[DeadlockGroup]  # every group of sessions waiting on each other, by smallest pid
    sessions: dict[int, ActivityRow]
    lock_table: LockTablePressure | None
    summary: list[SummaryRow] | None
    min_wait_s: float
    hidden_waiters: int  # waiting sessions left out by --min-wait
    findings: list[Finding]

    @property
    def cycles(self) -> list[tuple[int, ...]]:
        """The deadlocked groups' pids (the JSON `cycles`)."""
        return [g.pids for g in self.deadlocks]


def action_for(pid: int, state: str | None) -> str:
    """The one-line statement shown beside a root blocker (`pgdoctor.analyze.actions.short`)."""
    return actions.short(pid, state)


def to_waiter(s: ActivityRow, lock: WaitLock | None) -> Waiter:
    wait_s: float | None
    if lock is not None and lock.wait_s is not None:
        wait_s, source = lock.wait_s, "waitstart"
    else:
        wait_s, source = s.query_age_s, "query_start"
    return Waiter(
        pid=s.pid,
        application_name=s.application_name,
        usename=s.usename,
        datname=s.datname,
        blocked_by=tuple(s.blocked_by),
        wait_s=wait_s,
        wait_source=source,
        locktype=lock.locktype if lock else (s.wait_event or "?"),
        mode=lock.mode if lock else None,
        object=object_name(lock) if lock else None,
        query=s.query,
    )


def pressure_of(server: ServerInfo, stats: LockTableStats | None) -> LockTablePressure | None:
    """The shared lock table holds max_locks_per_transaction * (max_connections +
    max_prepared_transactions) locks ("Lock Management" in the docs); fast-path locks live outside it."""
    if stats is None:
        return None
    capacity = server.int_setting("max_locks_per_transaction") * (
        server.int_setting("max_connections") + server.int_setting("max_prepared_transactions")
    )
    shared = stats.entries - stats.fastpath_entries
    return LockTablePressure(
        entries=stats.entries,
        fastpath_entries=stats.fastpath_entries,
        shared_entries=shared,
        capacity=capacity,
        usage_pct=round(100.0 * shared / capacity, 1) if capacity else 0.0,
    )


def _who(pid: int, sessions: dict[int, ActivityRow]) -> str:
    if pid == PREPARED:
        return "a prepared transaction"
    s = sessions.get(pid)
    if s is None:
        return f"pid {pid} (gone)"
    return f"pid {pid} ({s.application_name or '(none)'}, {s.state or s.backend_type})"


def deadlock_finding(
    group: DeadlockGroup,
    graph: Graph,
    sessions: dict[int, ActivityRow],
    server: ServerInfo,
    wait_crit_s: float,
) -> Finding:
    """One finding per deadlocked group: all its sessions, and the one to end if one is on every cycle."""
    members = [graph.waiters[p] for p in group.pids]
    longest = max(w.wait_s or 0 for w in members)
    behind: set[int] = set()
    for p in group.pids:
        behind |= graph.descendants(p)
    behind -= set(group.pids)
    if group.simple:
        what = f"sessions {' -> '.join(map(str, group.pids))} wait on each other in a cycle"
    else:
        what = (
            f"{len(group.pids)} sessions wait on each other in intertwined cycles (a deadlocked group: "
            f"{', '.join(map(str, group.pids))})"
        )
    message = (
        f"{what}, for up to {duration(longest)}"
        + (f"; {len(behind)} more session(s) wait behind them" if behind else "")
        + "; the deadlock detector fails one of them after deadlock_timeout "
        f"({server.setting('deadlock_timeout') or '?'}ms in the server's configuration; a session may "
        "have raised its own)"
    )
    if group.breaks_all is not None:
        p = group.breaks_all
        action = action_for(p, sessions[p].state if p in sessions else None)
        end = (
            f"if it lasts, cancel one of them (`{action}`)"
            if group.simple
            else f"if it lasts, end pid {p}: it is on every cycle of the group, so that breaks them all "
            f"(`{action}`)"
        )
    elif group.breaks_all_checked:
        end = (
            "no one session is on every cycle of the group (ending one leaves a cycle among the others): "
            "if it lasts, cancel them one at a time and run pgdoctor locks again in between"
        )
    else:
        end = (
            "the group is too large to check which session, if any, is on every cycle: if it lasts, cancel "
            "them one at a time and run pgdoctor locks again in between"
        )
    return Finding(
        Severity.CRITICAL if longest >= wait_crit_s else Severity.WARNING,
        "deadlock_cycle",
        "server",
        message,
        end + "; make the applications take their locks in the same order",
        tuple(sorted(set(group.pids) | behind)),
        actions.end_sessions([group.breaks_all], sessions) if group.breaks_all is not None else "",
    )


def to_root(pid: int, s: ActivityRow | None, graph: Graph) -> Root:
    kind = "prepared" if pid == PREPARED else ("session" if s else "gone")
    return Root(
        pid=pid,
        application_name=s.application_name if s else None,
        usename=s.usename if s else None,
        datname=s.datname if s else None,
        backend_type=s.backend_type if s else None,
        state=s.state if s else None,
        xact_age_s=s.xact_age_s if s else None,
        state_age_s=s.state_age_s if s else None,
        query=s.query if s else None,
        blocks_direct=len(graph.children[pid]),
        blocks_total=len(graph.descendants(pid)),
        action=action_for(pid, s.state if s else None) if kind != "gone" else "",
        kind=kind,
    )


def idle_in_transaction_blockers(
    roots: list[Root], sessions: dict[int, ActivityRow], server: ServerInfo
) -> list[Finding]:
    """A root blocker idle in a transaction: nothing will release its locks but its end (the action:
    end exactly that session in that transaction; then the role's idle_in_transaction_session_timeout)."""
    idle_timeout = server.setting("idle_in_transaction_session_timeout") or "0"
    return [
        Finding(
            Severity.CRITICAL,
            "idle_in_transaction_blocker",
            r.application_name or "(none)",
            f"pid {r.pid} has been {r.state} for {duration(r.state_age_s or 0)} (transaction open "
            f"for {duration(r.xact_age_s or 0)}) and holds up {r.blocks_total} session(s); its last "
            f"statement: {' '.join((r.query or '').split())[:200]}",
            f"end it with `{r.action}` (its transaction rolls back); in the application, commit or roll "
            "back before slow work; set idle_in_transaction_session_timeout (now "
            f"{idle_timeout}ms, 0 = off)",
            (r.pid,),
            actions.lines(
                actions.terminate_sessions([to_session(sessions[r.pid])]),
                actions.prevent(
                    [sessions[r.pid]], "idle_in_transaction_session_timeout", IDLE_XACT_CRIT_S, server
                ),
            ),
        )
        for r in roots
        if r.state in IDLE_IN_XACT
    ]


def long_waits(
    roots: list[Root],
    shown: list[Waiter],
    graph: Graph,
    sessions: dict[int, ActivityRow],
    wait_warn_s: float,
    wait_crit_s: float,
) -> list[Finding]:
    """Per root blocker, the sessions behind it that waited wait_warn_s or more."""
    findings = []
    for r in roots:
        behind = graph.descendants(r.pid)
        long = [w for w in shown if w.pid in behind and (w.wait_s or 0) >= wait_warn_s]
        if not long:
            continue
        longest = max(w.wait_s or 0 for w in long)
        findings.append(
            Finding(
                Severity.CRITICAL if longest >= wait_crit_s else Severity.WARNING,
                "long_wait",
                r.application_name or ("prepared transaction" if r.kind == "prepared" else "(none)"),
                f"{len(long)} session(s) have waited {duration(wait_warn_s)} or more (up to "
                f"{duration(longest)}) behind {_who(r.pid, sessions)}",
                f"free the root blocker: `{r.action}`; bound waits with lock_timeout in the applications "
                "that queue"
                if r.action
                else "the root blocker is gone; run pgdoctor locks again",
                tuple(sorted(w.pid for w in long)),
                actions.end_sessions([r.pid], sessions),
            )
        )
    return findings


def lock_queues(shown: list[Waiter], queue_warn: int, queue_crit: int) -> list[Finding]:
    """queue_warn or more sessions waiting on one object, longest queue first."""
    queues: dict[tuple[str, str], list[Waiter]] = defaultdict(list)
    for w in shown:
        if w.object is not None:
            queues[(w.locktype, w.object)].append(w)
    return [
        Finding(
            Severity.CRITICAL if len(members) >= queue_crit else Severity.WARNING,
            "lock_queue",
            obj,
            f"{len(members)} sessions queue for a {locktype} lock on {obj} "
            f"({', '.join(sorted({w.mode or '?' for w in members}))}), each holding a connection slot "
            "while it waits",
            "free the head of the queue (see the tree); make the applications fail fast with "
            "lock_timeout, or serialise the work (a queue table with FOR UPDATE SKIP LOCKED)",
            tuple(sorted(w.pid for w in members)),
        )
        for (locktype, obj), members in sorted(queues.items(), key=lambda kv: -len(kv[1]))
        if len(members) >= queue_warn
    ]


def lock_table_pressure(
    pressure: LockTablePressure | None, server: ServerInfo, warn_pct: float, crit_pct: float
) -> list[Finding]:
    if not (pressure and pressure.capacity and pressure.usage_pct >= warn_pct):
        return []
    return [
        Finding(
            Severity.CRITICAL if pressure.usage_pct >= crit_pct else Severity.WARNING,
            "lock_table_pressure",
            "server",
            f"{pressure.shared_entries} entries in the shared lock table, {pressure.usage_pct:g}% of "
            f"its {pressure.capacity} slots (max_locks_per_transaction="
            f"{server.int_setting('max_locks_per_transaction')} x (max_connections="
            f"{server.int_setting('max_connections')} + max_prepared_transactions="
            f"{server.int_setting('max_prepared_transactions')})); when it is full, lock "
            "requests fail with 'out of shared memory'",
            "find the sessions holding many locks (`pgdoctor locks --all`: many partitions or advisory "
            "locks in one transaction); raise max_locks_per_transaction (needs a restart)",
        )
    ]


def hidden_sessions(pids: set[int], sessions: dict[int, ActivityRow], server: ServerInfo) -> list[Finding]:
    """Sessions in the picture whose state and query this role may not read."""
    hidden = sorted(p for p in pids if p in sessions and sessions[p].query == HIDDEN_QUERY)
    if not hidden or server.can_read_all_stats:
        return []
    user = server.current_user
    return [
        insufficient_privilege(
            user,
            f"{len(hidden)} session(s) in the lock picture belong to other roles: role {user} cannot "
            "read their state or query",
            tuple(hidden),
        )
    ]


def analyze(
    data: LocksData,
    *,
    # Hide waits shorter than this (display and findings); chains through hidden waiters are kept.
    min_wait_s: float = 0.0,
    wait_warn_s: float = LOCK_WAIT_WARN_S,
    wait_crit_s: float = LOCK_WAIT_CRIT_S,
    queue_warn: int = LOCK_QUEUE_WARN,
    queue_crit: int = LOCK_QUEUE_CRIT,
    pressure_warn_pct: float = LOCK_PRESSURE_WARN_PCT,
    pressure_crit_pct: float = LOCK_PRESSURE_CRIT_PCT,
) -> LocksReport:
    """Build the blocking trees, the root blockers and what is wrong."""
    picture = lock_picture(data.activity)
    sessions = {s.pid: s for s in picture}
    locks = {w.pid: w for w in data.waits or []}
    all_waiters = [to_waiter(s, locks.get(s.pid)) for s in picture if waiting(s)]
    waiters = apply_min_wait(all_waiters, min_wait_s)
    shown = [w for w in waiters if w.shown]
    graph = Graph(waiters)
    root_pids = graph.roots()
    deadlocks = graph.deadlocks()
    roots = sorted(
        (to_root(pid, sessions.get(pid), graph) for pid in root_pids), key=lambda r: (-r.blocks_total, r.pid)
    )
    # a group none of whose members waits on anyone outside it heads a tree of its own; the others
    # hang under what holds them up (a root blocker or another group)
    heads = [g.pids[0] for g in deadlocks if not graph.held_up_from_outside(g)]
    trees = graph.forest([r.pid for r in roots] + heads)
    for node in trees[len(roots) :]:
        node.cycle = True
    pressure = pressure_of(data.server, data.lock_table)

    findings = [
        *idle_in_transaction_blockers(roots, sessions, data.server),
        *long_waits(roots, shown, graph, sessions, wait_warn_s, wait_crit_s),
        *(deadlock_finding(g, graph, sessions, data.server, wait_crit_s) for g in deadlocks),
        *lock_queues(shown, queue_warn, queue_crit),
        *lock_table_pressure(pressure, data.server, pressure_warn_pct, pressure_crit_pct),
        *hidden_sessions({w.pid for w in waiters} | set(root_pids), sessions, data.server),
    ]
    return LocksReport(
        server=data.server,
        details=data.waits is not None,
        waiting=sorted(shown, key=lambda w: (-(w.wait_s or 0), w.pid)),
        waiter_index=graph.waiters,
        roots=roots,
        trees=trees,
        deadlocks=deadlocks,
        sessions=sessions,
        lock_table=pressure,
        summary=data.summary,
        min_wait_s=min_wait_s,
        hidden_waiters=len(all_waiters) - len(shown),
        findings=sort_findings(findings),
    )
