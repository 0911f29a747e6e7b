"""triage's problems: the findings of every analysis of one read merged so that one cause is one problem,
and ranked (`problems_of`); `pgdoctor.analyze.triage` runs the analyses and holds the report.

- a blocking tree (a root blocker and every session behind it, or a deadlocked group) is one problem:
  the lock findings (`LOCK_CODES`) that name any session of the tree, and the other findings that name
  the root blocker or only sessions of the tree (its application's `idle_in_transaction`, the waiters'
  `long_running` statements) are its evidence; a finding that touches several trees goes to the one it
  names most sessions of;
- the other findings are one problem when they name a common session (`idle_in_transaction` and
  `xmin_horizon` of one pid), repeat one another (same code and subject, from several commands), or are
  about the same statement or PgBouncer pool.

Problems are ranked by severity, then by impact: sessions held up (waiting on a lock behind it, or queued
in PgBouncer), then connection slots held (the sessions it names), then the order the analyses raised
them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pgdoctor.analyze.findings import Finding, Severity
from pgdoctor.analyze.format import duration
from pgdoctor.analyze.lock_graph import PREPARED, Graph
from pgdoctor.analyze.locks import LocksReport, Root

if TYPE_CHECKING:
    from pgdoctor.analyze.pgbouncer import PgBouncerReport

CONNECTIONS, LOCKS, SLOW_QUERIES, PGBOUNCER = "connections", "locks", "slow-queries", "pgbouncer"

# Findings about the lock picture: part of the problem of any blocking tree they name a session of.
LOCK_CODES = frozenset(
    {
        "blocked",
        "long_wait",
        "idle_in_transaction_blocker",
        "lock_queue",
        "dominant_statement",
        "deadlock_cycle",
    }
)
# Findings that count sessions held up by a lock (the impact of a problem no tree stands for).
WAIT_CODES = frozenset({"blocked", "long_wait", "lock_queue"})
# pg_stat_statements cannot be read (slow-queries' availability findings): a note in triage.
AVAILABILITY_CODES = frozenset(
    {
        "extension_not_installed",
        "extension_not_preloaded",
        "extension_not_created",
        "extension_no_access",
        "extension_unsupported",
    }
)
# Subjects that name no one thing: findings about them are not merged for their subject alone.
GENERIC_SUBJECTS = frozenset({"server", "pg_stat_statements", "pgbouncer"})
# Commands whose subject names one thing (a statement, a PgBouncer pool): one problem per subject.
BY_SUBJECT = frozenset({SLOW_QUERIES, PGBOUNCER})


@dataclass(frozen=True)
class Sourced:
    """A finding as its command raised it (the Finding object itself: every field of it passes through)."""

    command: str
    finding: Finding


@dataclass(frozen=True)
class Impact:
    sessions_blocked: int  # sessions waiting on a lock behind it
    clients_waiting: int  # clients queued in PgBouncer for a server connection
    slots_held: int  # PostgreSQL sessions it names: each holds a connection slot

    @property
    def held_up(self) -> int:
        return self.sessions_blocked + self.clients_waiting


@dataclass(frozen=True)
class Problem:
    rank: int
    kind: str  # "root_blocker", "deadlock" or "findings"
    severity: Severity
    subject: str
    message: str
    advice: str
    codes: tuple[str, ...]
    sources: tuple[str, ...]  # the commands whose findings it merges
    pids: tuple[int, ...]
    impact: Impact
    evidence: tuple[int, ...]  # indexes into TriageReport.findings
    actions: tuple[str, ...]  # ready SQL statements (pgdoctor prints them, never runs them)
    root_pid: int | None = None


@dataclass
class _Tree:
    kind: str
    pids: frozenset[int]
    blocked: int
    root: Root | None = None


def actions_of(findings: Iterable[Finding]) -> list[str]:
    """The ready statements findings carry (a Finding's optional `action`: one statement a line), each
    statement once, in the findings' order."""
    out: list[str] = []
    for f in findings:
        action = getattr(f, "action", None)
        if isinstance(action, str):
            out += [line for line in action.splitlines() if line and line not in out]
    return out


def root_actions(root: Root, findings: Iterable[Finding]) -> list[str]:
    """What frees a blocking tree: the statement that ends its root blocker alone, guarded to still be the
    same session (a finding's; else the short one `locks` shows beside the root), then what prevents a
    recurrence. Not the statements of its other evidence: cancelling the waiters, or ending every idle
    transaction of the root's application, frees nothing the root does not hold."""
    from pgdoctor.analyze.actions import ends_only, is_prevention

    every = actions_of(findings)
    guarded = [a for a in every if ends_only(a, root.pid)]
    first = guarded[:1] or ([root.action] if root.action else [])
    return first + [a for a in every if is_prevention(a)]


def as_triage_note(s: Sourced) -> Sourced:
    """pg_stat_statements that cannot be read is a note in triage, not an incident."""
    if s.command == SLOW_QUERIES and s.finding.code in AVAILABILITY_CODES:
        return replace(s, finding=replace(s.finding, severity=Severity.INFO))
    return s


def blocking_trees(locks: LocksReport) -> list[_Tree]:
    """One tree per root blocker (most sessions held up first), then one per deadlocked group."""
    graph = Graph(locks.waiter_index.values())
    trees = [
        _Tree("root_blocker", frozenset({r.pid} | graph.descendants(r.pid)), r.blocks_total, r)
        for r in locks.roots
    ]
    for f in locks.findings:
        if f.code == "deadlock_cycle":
            trees.append(_Tree("deadlock", frozenset(f.pids), len(f.pids)))
    return trees


def tree_of(f: Finding, trees: list[_Tree]) -> int | None:
    """The blocking tree a finding is about, if any (see the module's docstring)."""
    pids = set(f.pids)
    best: tuple[int, bool, bool, int] | None = None
    chosen = None
    for i, tree in enumerate(trees):
        inside = len(pids & tree.pids)
        named_root = tree.root is not None and tree.root.pid in pids
        # a lock finding: any session of the tree; another: the root, or only sessions of the tree
        whole = bool(pids) and inside == len(pids)
        eligible = inside > 0 if f.code in LOCK_CODES else (named_root or whole)
        # ties: the tree whose root the finding names, then whose root's application is its subject
        # (`long_wait` behind one of two roots a session waits on), then the smaller tree
        own_app = tree.root is not None and (tree.root.application_name or "(none)") == f.subject
        score = (inside, named_root, own_app, -len(tree.pids))
        if eligible and (best is None or score > best):
            best, chosen = score, i
    return chosen


def merged_groups(indexes: list[int], findings: list[Sourced]) -> list[list[int]]:
    """The findings that are one problem (union-find): a common session, the same code and subject, or
    the same statement or pool. Linear in the findings and their pids."""
    parent = {i: i for i in indexes}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    first: dict[object, int] = {}  # a pid, (code, subject) or (command, subject) -> the first finding
    for i in indexes:
        s = findings[i]
        f = s.finding
        keys: list[object] = [*f.pids, ("code", f.code, f.subject)]
        if s.command in BY_SUBJECT and f.subject not in GENERIC_SUBJECTS:
            keys.append(("subject", s.command, f.subject))
        for key in keys:
            if key in first:
                union(first[key], i)
            else:
                first[key] = i
    groups: dict[int, list[int]] = {}
    for i in indexes:
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def _worst(members: list[int], findings: list[Sourced]) -> Severity:
    return max((findings[i].finding.severity for i in members), key=lambda s: s.rank)


def _lead(members: list[int], findings: list[Sourced]) -> Finding:
    """The most severe finding, the first raised among equals."""
    return findings[min(members, key=lambda i: (-findings[i].finding.severity.rank, i))].finding


def _codes(members: list[int], findings: list[Sourced]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(findings[i].finding.code for i in members))


def _sources(members: list[int], findings: list[Sourced]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(findings[i].command for i in members))


def _slots(pids: Iterable[int]) -> tuple[int, ...]:
    return tuple(sorted({p for p in pids if p != PREPARED}))


def root_message(root: Root, behind: Iterable[int], locks: LocksReport) -> str:
    """What a root blocker does: who it is, for how long, and who waits behind it (`behind`)."""
    who = root.application_name or "(none)"
    if root.kind == "prepared":
        head = "a prepared transaction"
    elif root.kind == "gone":
        head = f"pid {root.pid} (gone since)"
    else:
        age = root.state_age_s  # in its state: idle (in transaction) since, or running its statement
        state = f"{root.state or 'state hidden'}" + (f" for {duration(age)}" if age is not None else "")
        head = f"pid {root.pid} ({who}, {state})"
    waiters = [locks.waiter_index[p] for p in sorted(behind) if p in locks.waiter_index]
    apps: dict[str, int] = {}
    for w in waiters:
        apps[w.application_name or "(none)"] = apps.get(w.application_name or "(none)", 0) + 1
    longest = max((w.wait_s or 0 for w in waiters), default=0.0)
    named = ", ".join(f"{app}: {n}" for app, n in sorted(apps.items()))
    return (
        f"root blocker {head} holds up {root.blocks_total} session(s) ({named}), waiting up to "
        f"{duration(longest)}"
    )


def root_advice(root: Root, members: list[Finding]) -> str:
    for code in ("idle_in_transaction_blocker", "long_wait"):
        for f in members:
            if f.code == code and f.advice:
                return f.advice
    if not root.action:
        return "the root blocker is gone; run pgdoctor triage again"
    return (
        f"free the root blocker: `{root.action}`; bound waits with lock_timeout in the applications "
        "that queue"
    )


def tree_problem(tree: _Tree, members: list[int], findings: list[Sourced], locks: LocksReport) -> Problem:
    fs = [findings[i].finding for i in members]
    pids = _slots([*tree.pids, *(p for f in fs for p in f.pids)])
    if tree.root is not None:
        root = tree.root
        subject = (
            "a prepared transaction"
            if root.kind == "prepared"
            else f"pid {root.pid} ({root.application_name or '(none)'})"
        )
        message, advice = root_message(root, tree.pids - {root.pid}, locks), root_advice(root, fs)
        actions = root_actions(root, fs)
    else:
        cycles = [i for i in members if findings[i].finding.code == "deadlock_cycle"]
        lead = _lead(cycles or members, findings)
        subject, message, advice = (
            "deadlock: pids " + ", ".join(map(str, sorted(tree.pids))),
            lead.message,
            lead.advice,
        )
        actions = actions_of(fs)
    return Problem(
        rank=0,
        kind=tree.kind,
        severity=_worst(members, findings),
        subject=subject,
        message=message,
        advice=advice,
        codes=_codes(members, findings),
        sources=_sources(members, findings),
        pids=pids,
        impact=Impact(sessions_blocked=tree.blocked, clients_waiting=0, slots_held=len(pids)),
        evidence=tuple(members),
        actions=tuple(dict.fromkeys(actions)),
        root_pid=tree.root.pid if tree.root is not None else None,
    )


def group_problem(members: list[int], findings: list[Sourced], pgbouncer: PgBouncerReport | None) -> Problem:
    fs = [findings[i].finding for i in members]
    lead = _lead(members, findings)
    pids = _slots(p for f in fs for p in f.pids)
    waiting = {p for f in fs if f.code in WAIT_CODES for p in f.pids}
    pools = {findings[i].finding.subject for i in members if findings[i].command == PGBOUNCER}
    queued = sum(p.cl_waiting for p in pgbouncer.pools if p.name in pools) if pgbouncer else 0
    return Problem(
        rank=0,
        kind="findings",
        severity=_worst(members, findings),
        subject=lead.subject,
        message=lead.message,
        advice=lead.advice,
        codes=_codes(members, findings),
        sources=_sources(members, findings),
        pids=pids,
        impact=Impact(sessions_blocked=len(waiting), clients_waiting=queued, slots_held=len(pids)),
        evidence=tuple(members),
        actions=tuple(actions_of(fs)),
    )


def problems_of(
    findings: list[Sourced], locks: LocksReport, pgbouncer: PgBouncerReport | None
) -> list[Problem]:
    """Merge the findings into problems and rank them (the first is what to do first)."""
    trees = blocking_trees(locks)
    in_tree: dict[int, list[int]] = {}
    rest: list[int] = []
    for i, s in enumerate(findings):
        if s.finding.severity is Severity.INFO:
            continue
        t = tree_of(s.finding, trees)
        if t is None:
            rest.append(i)
        else:
            in_tree.setdefault(t, []).append(i)
    problems = [tree_problem(trees[t], members, findings, locks) for t, members in in_tree.items()]
    problems += [group_problem(g, findings, pgbouncer) for g in merged_groups(rest, findings)]
    problems.sort(key=lambda p: (-p.severity.rank, -p.impact.held_up, -p.impact.slots_held, min(p.evidence)))
    return [replace(p, rank=n) for n, p in enumerate(problems, 1)]
