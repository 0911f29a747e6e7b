"""The waits-for graph from pg_blocking_pids(): waiters, root blockers, deadlocked groups and the
blocking trees drawn from them.

`root_blockers` is the one root-blocker analysis: `locks` (its trees) and `connections` (its `blocked`
finding) both call it, on the waits-for relation of the same pg_stat_activity rows
(`analyze.activity.waits_for`), so they name the same root blockers.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from pgdoctor.analyze.deadlocks import DeadlockGroup, deadlocked_groups

PREPARED = 0  # pg_blocking_pids() reports a prepared transaction as pid 0


def root_blockers(waits: Mapping[int, Sequence[int]], above: Iterable[int] | None = None) -> list[int]:
    """The sessions at the head of the wait chains: they block someone and wait on nobody (pid 0 is a
    prepared transaction; a pid no row has is a session gone since). `waits`: each waiting session's
    pid -> the pids it waits on (pg_blocking_pids()). `above`: only the heads of the chains these
    waiters are in. Sessions that wait on each other in a cycle have no head.

    >>> root_blockers({2: [1], 3: [2], 5: [4], 4: [5]})
    [1]
    >>> root_blockers({2: [1], 3: [2], 7: [6, 0]}, above=[7])
    [0, 6]
    """
    if above is None:
        blockers = {b for pids in waits.values() for b in pids}
        return sorted(b for b in blockers if not waits.get(b))
    roots: set[int] = set()
    seen: set[int] = set()
    stack = [b for pid in above for b in waits.get(pid, ())]
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        if waits.get(pid):
            stack.extend(waits[pid])
        else:
            roots.add(pid)
    return sorted(roots)


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

    def roots(self) -> list[int]:
        return root_blockers({p: w.blocked_by for p, w in self.waiters.items()})

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
