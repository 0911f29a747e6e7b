"""Who blocks whom: the waits-for graph from pg_blocking_pids(), as trees under root blockers.

A root blocker blocks others and waits on nobody. Every waiting session hangs under each session it
waits on (marked when it waits on several); a cycle (a deadlock the detector has not broken yet) is
shown once and never followed round.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from pgdoctor.analyze.common import HIDDEN_QUERY, insufficient_privilege
from pgdoctor.analyze.deadlocks import DeadlockGroup, deadlocked_groups
from pgdoctor.analyze.findings import Finding, Severity, sort_findings
from pgdoctor.analyze.format import duration
from pgdoctor.collect.locks import LocksData, LockSession, LockTableStats, SummaryRow, WaitLock
from pgdoctor.collect.server import ServerInfo

PREPARED = 0  # pg_blocking_pids() reports a prepared transaction as pid 0
IDLE_IN_XACT = ("idle in transaction", "idle in transaction (aborted)")
RELATION_LEVEL = ("relation", "page", "tuple", "extend")


@dataclass(frozen=True)
class Waiter:
    """A session waiting on a heavyweight lock."""

    pid: int
    application_name: str
    usename: str | None
    datname: str | None
    blocked_by: tuple[int, ...]
    wait_s: float | None
    wait_source: str  # "waitstart" (pg_locks, PostgreSQL 14+) or "query_start" (an upper bound)
    locktype: str  # from pg_locks, or pg_stat_activity.wait_event when pg_locks was not read
    mode: str | None
    object: str | None
    query: str | None
    shown: bool = True  # False: hidden by --min-wait but kept as a link of a shown chain


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


@dataclass
class TreeNode:
    """A session in a blocking tree. Every waiter is drawn in full once, at its shallowest place (so a
    queue of n sessions on one lock is n children of its holder, not a chain n deep); under its other
    blockers it is listed in `also_blocks`, so each waiter still appears under every blocker."""

    pid: int
    children: list[TreeNode] = field(default_factory=list)  # waiters drawn in full here
    also_blocked_by: tuple[int, ...] = ()  # the other sessions this one waits on
    also_blocks: tuple[int, ...] = ()  # waiters on this session drawn in full elsewhere
    cycle_to: tuple[int, ...] = ()  # waiters on this session further up this branch: a cycle
    cycle: bool = False  # this tree stands for a cycle (no root blocker heads it)


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
    sessions: dict[int, LockSession]
    lock_table: LockTablePressure | None
    summary: list[SummaryRow] | None
    min_wait_s: float
    hidden_waiters: int  # waiting sessions left out by --min-wait
    findings: list[Finding]

    @property
    def cycles(self) -> list[tuple[int, ...]]:
        """The deadlocked groups' pids (the JSON `cycles`)."""
        return [g.pids for g in self.deadlocks]


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def advisory_key(classid: int, objid: int, objsubid: int) -> str:
    """pg_advisory_lock(bigint) sets objsubid 1 and splits the key over classid/objid; the
    (int4, int4) form sets objsubid 2 with one key in each."""
    if objsubid == 1:
        key = ((classid & 0xFFFFFFFF) << 32) | (objid & 0xFFFFFFFF)
        if key >= 1 << 63:
            key -= 1 << 64
        return f"advisory key {key}"
    return f"advisory keys ({_int32(classid)}, {_int32(objid)})"


def _in_db(w: WaitLock | SummaryRow) -> str:
    if w.local or w.database in (None, 0):
        return ""
    return f" in database {w.datname or w.database}"


def relation_name(w: WaitLock | SummaryRow) -> str:
    if w.relname:
        return w.relname
    if not w.local:
        return f"relation {w.relation} in database {w.datname or w.database} (not resolvable from here)"
    return f"relation {w.relation}"


def object_name(w: WaitLock) -> str:
    """The locked object, named as an operator would look for it."""
    if w.locktype == "relation":
        return relation_name(w)
    if w.locktype == "tuple":
        return f"{relation_name(w)} ({w.page},{w.tuple})"
    if w.locktype == "page":
        return f"{relation_name(w)} page {w.page}"
    if w.locktype == "extend":
        return f"{relation_name(w)} (extension)"
    if w.locktype == "transactionid":
        return f"transaction {w.transactionid}"
    if w.locktype == "virtualxid":
        return f"virtual transaction {w.virtualxid}"
    if w.locktype == "advisory" and w.classid is not None and w.objid is not None:
        return advisory_key(w.classid, w.objid, w.objsubid or 0) + _in_db(w)
    if w.locktype == "object":
        if w.description:
            return w.description + _in_db(w)
        sub = f" column {w.objsubid}" if w.objsubid else ""
        return f"{w.catalog or w.classid} oid {w.objid}{sub}" + _in_db(w)
    if w.locktype == "frozenid":
        return f"datfrozenxid of database {w.datname or w.database}"
    parts = [
        f"{name} {value}"
        for name, value in (
            ("database", w.datname or w.database),
            ("classid", w.classid),
            ("objid", w.objid),
            ("objsubid", w.objsubid),
            ("transaction", w.transactionid),
        )
        if value not in (None, "")
    ]
    return f"{w.locktype} " + " ".join(parts) if parts else w.locktype


def summary_object(row: SummaryRow) -> str:
    if row.locktype in RELATION_LEVEL and row.relation is not None:
        return relation_name(row)
    if row.locktype == "object":
        return f"{row.catalog or row.classid} objects" + _in_db(row)
    if row.database not in (None, 0):
        return f"database {row.datname or row.database}"
    return ""


def action_for(pid: int, state: str | None) -> str:
    """The SQL that frees the lock: cancel a running statement; terminate a session that sits idle
    (in a transaction, or holding session-level advisory locks), since cancel does nothing there."""
    if pid == PREPARED:
        return "SELECT gid, prepared, owner FROM pg_prepared_xacts; -- then ROLLBACK PREPARED '<gid>'"
    if state in (*IDLE_IN_XACT, "idle"):
        return f"SELECT pg_terminate_backend({pid});"
    if state is None:
        return (
            f"SELECT pg_cancel_backend({pid}); -- its state is hidden from this role; if it is idle "
            f"(in transaction): SELECT pg_terminate_backend({pid});"
        )
    return f"SELECT pg_cancel_backend({pid});"


def to_waiter(s: LockSession, lock: WaitLock | None) -> Waiter:
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


class Graph:
    """The waits-for relation: blocker pid -> the pids waiting on it."""

    def __init__(self, waiters: Iterable[Waiter]) -> None:
        self.waiters = {w.pid: w for w in waiters}
        self.children: dict[int, set[int]] = defaultdict(set)
        for w in self.waiters.values():
            for b in w.blocked_by:
                self.children[b].add(w.pid)

    def descendants(self, pid: int) -> set[int]:
        seen: set[int] = set()
        stack = list(self.children.get(pid, ()))
        while stack:
            p = stack.pop()
            if p in seen:
                continue
            seen.add(p)
            stack.extend(self.children.get(p, ()))
        seen.discard(pid)
        return seen

    def is_root(self, pid: int) -> bool:
        w = self.waiters.get(pid)
        return bool(self.children.get(pid)) and (w is None or not w.blocked_by)

    def roots(self) -> list[int]:
        return sorted(p for p in self.children if self.is_root(p))

    def deadlocks(self) -> list[DeadlockGroup]:
        """Every group of waiters that wait on each other (a strongly connected component holding a
        cycle), by smallest pid: every session on some cycle is in exactly one group."""
        return deadlocked_groups({p: w.blocked_by for p, w in self.waiters.items()})

    def held_up_from_outside(self, group: DeadlockGroup) -> bool:
        """A member of the group also waits on a session outside it (the group is drawn under that one)."""
        members = set(group.pids)
        return any(b not in members for p in group.pids for b in self.waiters[p].blocked_by)

    def forest(self, heads: list[int]) -> list[TreeNode]:
        """One tree per head (root blockers, then one pid of each cycle). Breadth first: each waiter
        is drawn in full under the first blocker that reaches it at the smallest depth."""
        home: dict[int, int] = {}
        found = set(heads)
        queue = deque(heads)
        while queue:
            pid = queue.popleft()
            for child in self._kids(pid):
                if child not in found:
                    found.add(child)
                    home[child] = pid
                    queue.append(child)
        return [self._node(h, home, frozenset({h})) for h in heads]

    def _kids(self, pid: int) -> list[int]:
        return sorted(self.children.get(pid, ()), key=lambda p: (-(self.waiters[p].wait_s or 0), p))

    def _node(self, pid: int, home: dict[int, int], path: frozenset[int]) -> TreeNode:
        w = self.waiters.get(pid)
        node = TreeNode(
            pid, also_blocked_by=tuple(b for b in (w.blocked_by if w else ()) if b != home.get(pid))
        )
        elsewhere: list[int] = []
        up: list[int] = []
        for child in self._kids(pid):
            if home.get(child) == pid:
                node.children.append(self._node(child, home, path | {child}))
            elif child in path:
                up.append(child)
            else:
                elsewhere.append(child)
        node.also_blocks = tuple(elsewhere)
        node.cycle_to = tuple(up)
        return node


def apply_min_wait(waiters: list[Waiter], min_wait_s: float) -> list[Waiter]:
    """Keep waits of at least `min_wait_s`, and the waiters their chains run through (marked not shown)."""
    if min_wait_s <= 0:
        return waiters
    by_pid = {w.pid: w for w in waiters}
    keep = {w.pid for w in waiters if (w.wait_s or 0) >= min_wait_s}
    links: set[int] = set()
    stack = list(keep)
    while stack:
        w = by_pid.get(stack.pop())
        for b in w.blocked_by if w else ():
            if b in by_pid and b not in keep and b not in links:
                links.add(b)
                stack.append(b)
    out = []
    for w in waiters:
        if w.pid in keep:
            out.append(w)
        elif w.pid in links:
            out.append(replace(w, shown=False))
    return out


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


def _who(pid: int, sessions: dict[int, LockSession]) -> str:
    if pid == PREPARED:
        return "a prepared transaction"
    s = sessions.get(pid)
    if s is None:
        return f"pid {pid} (gone)"
    return f"pid {pid} ({s.application_name or '(none)'}, {s.state or s.backend_type})"


def deadlock_finding(
    group: DeadlockGroup,
    graph: Graph,
    sessions: dict[int, LockSession],
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
    )


def analyze(
    data: LocksData,
    *,
    # Hide waits shorter than this (display and findings); chains through hidden waiters are kept.
    min_wait_s: float = 0.0,
    # log_lock_waits reports waits longer than deadlock_timeout (1s by default, "Lock Management" in
    # the docs); a wait of 10s is felt by users, a minute is a pile-up.
    wait_warn_s: float = 10.0,
    wait_crit_s: float = 60.0,
    # Sessions queued on one object: each holds a connection slot while it waits.
    queue_warn: int = 5,
    queue_crit: int = 20,
    # Share of the shared lock table in use; when it is full, lock requests fail with "out of shared
    # memory" and the hint to raise max_locks_per_transaction.
    pressure_warn_pct: float = 80.0,
    pressure_crit_pct: float = 95.0,
) -> LocksReport:
    """Build the blocking trees, the root blockers and what is wrong."""
    sessions = {s.pid: s for s in data.sessions}
    locks = {w.pid: w for w in data.waits or []}
    all_waiters = [
        to_waiter(s, locks.get(s.pid)) for s in data.sessions if s.wait_event_type == "Lock" or s.blocked_by
    ]
    waiters = apply_min_wait(all_waiters, min_wait_s)
    graph = Graph(waiters)
    root_pids = graph.roots()
    deadlocks = graph.deadlocks()

    roots: list[Root] = []
    for pid in root_pids:
        s = sessions.get(pid)
        kind = "prepared" if pid == PREPARED else ("session" if s else "gone")
        roots.append(
            Root(
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
        )
    roots.sort(key=lambda r: (-r.blocks_total, r.pid))
    # a group none of whose members waits on anyone outside it heads a tree of its own; the others
    # hang under what holds them up (a root blocker or another group)
    heads = [g.pids[0] for g in deadlocks if not graph.held_up_from_outside(g)]
    trees = graph.forest([r.pid for r in roots] + heads)
    for node in trees[len(roots) :]:
        node.cycle = True

    findings: list[Finding] = []
    idle_timeout = data.server.setting("idle_in_transaction_session_timeout") or "0"
    for r in roots:
        if r.state not in IDLE_IN_XACT:
            continue
        findings.append(
            Finding(
                Severity.CRITICAL,
                "idle_in_transaction_blocker",
                r.application_name or "(none)",
                f"pid {r.pid} has been {r.state} for {duration(r.state_age_s or 0)} (transaction open "
                f"for {duration(r.xact_age_s or 0)}) and holds up {r.blocks_total} session(s); its last "
                "statement: "
                f"{' '.join((r.query or '').split())[:200]}",
                f"end it with `{r.action}` (its transaction rolls back); in the application, commit or roll "
                "back before slow work; set idle_in_transaction_session_timeout (now "
                f"{idle_timeout}ms, 0 = off)",
                (r.pid,),
            )
        )

    shown = [w for w in waiters if w.shown]
    for r in roots:
        behind = graph.descendants(r.pid)
        long = [w for w in shown if w.pid in behind and (w.wait_s or 0) >= wait_warn_s]
        if not long:
            continue
        longest = max(w.wait_s or 0 for w in long)
        who = _who(r.pid, sessions)
        findings.append(
            Finding(
                Severity.CRITICAL if longest >= wait_crit_s else Severity.WARNING,
                "long_wait",
                r.application_name or ("prepared transaction" if r.kind == "prepared" else "(none)"),
                f"{len(long)} session(s) have waited {duration(wait_warn_s)} or more (up to "
                f"{duration(longest)}) behind {who}",
                f"free the root blocker: `{r.action}`; bound waits with lock_timeout in the applications "
                "that queue"
                if r.action
                else "the root blocker is gone; run pgdoctor locks again",
                tuple(sorted(w.pid for w in long)),
            )
        )

    for group in deadlocks:
        findings.append(deadlock_finding(group, graph, sessions, data.server, wait_crit_s))

    queues: dict[tuple[str, str], list[Waiter]] = defaultdict(list)
    for w in shown:
        if w.object is not None:
            queues[(w.locktype, w.object)].append(w)
    for (locktype, obj), members in sorted(queues.items(), key=lambda kv: -len(kv[1])):
        if len(members) < queue_warn:
            continue
        modes = ", ".join(sorted({w.mode or "?" for w in members}))
        findings.append(
            Finding(
                Severity.CRITICAL if len(members) >= queue_crit else Severity.WARNING,
                "lock_queue",
                obj,
                f"{len(members)} sessions queue for a {locktype} lock on {obj} ({modes}), each holding "
                "a connection slot while it waits",
                "free the head of the queue (see the tree); make the applications fail fast with "
                "lock_timeout, or serialise the work (a queue table with FOR UPDATE SKIP LOCKED)",
                tuple(sorted(w.pid for w in members)),
            )
        )

    pressure = pressure_of(data.server, data.lock_table)
    if pressure and pressure.capacity and pressure.usage_pct >= pressure_warn_pct:
        findings.append(
            Finding(
                Severity.CRITICAL if pressure.usage_pct >= pressure_crit_pct else Severity.WARNING,
                "lock_table_pressure",
                "server",
                f"{pressure.shared_entries} entries in the shared lock table, {pressure.usage_pct:g}% of "
                f"its {pressure.capacity} slots (max_locks_per_transaction="
                f"{data.server.int_setting('max_locks_per_transaction')} x (max_connections="
                f"{data.server.int_setting('max_connections')} + max_prepared_transactions="
                f"{data.server.int_setting('max_prepared_transactions')})); when it is full, lock "
                "requests fail with 'out of shared memory'",
                "find the sessions holding many locks (`pgdoctor locks --all`: many partitions or advisory "
                "locks in one transaction); raise max_locks_per_transaction (needs a restart)",
            )
        )

    hidden = [
        p
        for p in {w.pid for w in waiters} | set(root_pids)
        if p in sessions and sessions[p].query == HIDDEN_QUERY
    ]
    if hidden and not data.server.can_read_all_stats:
        user = data.server.current_user
        findings.append(
            insufficient_privilege(
                user,
                f"{len(hidden)} session(s) in the lock picture belong to other roles: role {user} cannot "
                "read their state or query",
                tuple(sorted(hidden)),
            )
        )

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
