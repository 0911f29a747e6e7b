"""Views of the one pg_stat_activity read (`collect.activity`): the rows each command looks at."""

from __future__ import annotations

from collections.abc import Iterable

from pgdoctor.analyze.common import CLIENT_BACKEND
from pgdoctor.collect.activity import ActivityRow

# pg_stat_activity.state of a backend running a statement
RUNNING_STATES = ("active", "fastpath function call")


def running(rows: Iterable[ActivityRow]) -> list[ActivityRow]:
    """The client backends running a statement now (`slow-queries`)."""
    return [r for r in rows if r.backend_type == CLIENT_BACKEND and r.state in RUNNING_STATES]


def waiting(row: ActivityRow) -> bool:
    """Waits on a heavyweight lock (or pg_blocking_pids() names who it waits on, its wait hidden)."""
    return row.wait_event_type == "Lock" or bool(row.blocked_by)


def lock_picture(rows: Iterable[ActivityRow]) -> list[ActivityRow]:
    """The sessions that wait on a lock, and the ones they wait on, by pid (`locks`)."""
    rows = list(rows)
    blockers = {pid for r in rows for pid in r.blocked_by}
    return sorted((r for r in rows if waiting(r) or r.pid in blockers), key=lambda r: r.pid)


def waits_for(rows: Iterable[ActivityRow]) -> dict[int, tuple[int, ...]]:
    """The waits-for relation of the waiting sessions: pid -> the pids it waits on (pg_blocking_pids()),
    what `lock_graph.root_blockers` reads for `connections` and `locks` alike."""
    return {r.pid: tuple(r.blocked_by) for r in rows if waiting(r)}
