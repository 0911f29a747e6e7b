"""Deadlocks in a waits-for graph: the groups of sessions that wait on each other, and the one session
(if there is one) whose end breaks every cycle of its group.

The graph's edges run from a waiting session to each session `pg_blocking_pids()` says it waits on. A
session is deadlocked when it lies on a cycle; the deadlocked sessions are exactly the members of the
strongly connected components that hold a cycle (two or more sessions, or one waiting on itself), so
each such component is reported as one group. Elementary cycles are never enumerated: a tangle of n
sessions can hold exponentially many.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

# Work allowed to find the session on every cycle of one group, in nodes + edges visited (each check
# visits the group once). A real deadlock is a handful of sessions and needs one or two checks; only a
# tangle of thousands of sessions built to defeat the search can run out, and is then reported as not
# checked rather than holding the terminal for seconds.
BREAKS_ALL_BUDGET = 2_000_000


@dataclass(frozen=True)
class DeadlockGroup:
    """Sessions waiting on each other: a strongly connected component of the waits-for graph."""

    pids: tuple[int, ...]  # one simple cycle: in wait order from the smallest pid; otherwise ascending
    simple: bool  # the group is one cycle (each member waits on exactly one other member)
    breaks_all: int | None  # the smallest pid on every cycle of the group: ending it breaks them all
    breaks_all_checked: bool  # False: the budget ran out before breaks_all was settled (it is None)


def strongly_connected(nodes: Iterable[int], succ: Callable[[int], Iterable[int]]) -> list[list[int]]:
    """Tarjan's algorithm, iterative (no recursion limit on a long chain). `succ` must only name nodes
    of `nodes`. Components come out in reverse topological order (a component before those that reach it)."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    out: list[list[int]] = []
    for start in nodes:
        if start in index:
            continue
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        work = [(start, iter(succ(start)))]
        while work:
            v, edges = work[-1]
            descended = False
            for w in edges:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(succ(w))))
                    descended = True
                    break
                if w in on_stack and index[w] < low[v]:
                    low[v] = index[w]
            if descended:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
            if low[v] == index[v]:
                component: list[int] = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                out.append(component)
    return out


def _cyclic(component: list[int], succ: Callable[[int], Iterable[int]]) -> bool:
    return len(component) > 1 or component[0] in succ(component[0])


def _walk_to_cycle(
    start: int, succ: Callable[[int], Iterable[int]], inside: Collection[int], avoid: Collection[int]
) -> list[int]:
    """A cycle of `inside` (where every node has a successor inside), found by walking from `start`,
    stepping to a node outside `avoid` whenever there is one (so it avoids as much of `avoid` as it can)."""
    seen: dict[int, int] = {}
    path: list[int] = []
    cur = start
    while cur not in seen:
        seen[cur] = len(path)
        path.append(cur)
        nxt = sorted(q for q in succ(cur) if q in inside)
        cur = next((q for q in nxt if q not in avoid), nxt[0])
    return path[seen[cur] :]


def breaks_all(
    group: Collection[int], succ: Callable[[int], Iterable[int]], budget: int = BREAKS_ALL_BUDGET
) -> tuple[int | None, bool]:
    """The smallest pid of a strongly connected, cyclic `group` that lies on every cycle of it (the group
    minus it is acyclic), or None; and whether that was settled within `budget` (nodes + edges visited).

    Any such pid lies on the first cycle found, so that cycle's pids are the candidates. Each check takes
    the smallest candidate v out and finds the cyclic components of what is left (Tarjan): none, v is
    it; two or more, two disjoint cycles, so no pid is on every cycle; one, K, so the answer lies in K
    and on a cycle of K walked to avoid the remaining candidates, and the candidates shrink to it (at
    least v goes). At most one check per pid of the first cycle."""
    members = set(group)

    def inner(p: int) -> list[int]:
        return [q for q in succ(p) if q in members]

    size = len(members) + sum(len(inner(p)) for p in members)
    candidates = set(_walk_to_cycle(min(members), inner, members, ()))
    spent = 0
    while candidates:
        if spent + size > budget:
            return None, False
        spent += size
        v = min(candidates)
        rest = members - {v}

        def without_v(p: int, v: int = v) -> list[int]:
            return [q for q in inner(p) if q != v]

        cyclic = [c for c in strongly_connected(sorted(rest), without_v) if _cyclic(c, without_v)]
        if not cyclic:
            return v, True
        if len(cyclic) > 1:
            return None, True
        component = set(cyclic[0])
        candidates &= component
        if candidates:
            candidates &= set(_walk_to_cycle(min(component), without_v, component, candidates))
    return None, True


def _order(component: list[int], succ: Callable[[int], Iterable[int]]) -> tuple[tuple[int, ...], bool]:
    members = set(component)
    nexts = {p: [q for q in succ(p) if q in members] for p in component}
    if len(component) > 1 and all(len(n) == 1 for n in nexts.values()):
        cycle = [min(component)]
        while len(cycle) < len(component):
            cycle.append(nexts[cycle[-1]][0])
        return tuple(cycle), True
    return tuple(sorted(component)), len(component) == 1


def deadlocked_groups(
    waits_on: Mapping[int, Iterable[int]], budget: int = BREAKS_ALL_BUDGET
) -> list[DeadlockGroup]:
    """Every group of sessions that wait on each other, by smallest pid. `waits_on` maps each waiting
    pid to the pids it waits on; pids that wait on nobody may be left out."""
    adjacency = {p: sorted(set(qs)) for p, qs in waits_on.items()}

    def succ(p: int) -> list[int]:
        return [q for q in adjacency.get(p, ()) if q in adjacency]

    groups = []
    for component in strongly_connected(sorted(adjacency), succ):
        if not _cyclic(component, succ):
            continue
        pids, simple = _order(component, succ)
        breaker, checked = (pids[0], True) if simple else breaks_all(component, succ, budget)
        groups.append(DeadlockGroup(pids, simple, breaker, checked))
    return sorted(groups, key=lambda g: min(g.pids))
