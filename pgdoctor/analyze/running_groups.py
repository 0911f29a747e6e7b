"""`slow-queries`: the statements running now, grouped by (application, normalised query) with a count
(58 sessions of one report query are one row, not 58), and which statements' sessions wait on a lock."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from pgdoctor.analyze.slow_query_rows import Running

# A string literal (with '' inside), a dollar-quoted one, or a number not part of a name: each is one
# value, written `?` (pg_stat_statements writes $1, $2 …; running texts carry the values themselves).
_LITERAL = re.compile(r"'(?:[^']|'')*'|\$\$.*?\$\$|(?<![\w$.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b", re.S)
_IN_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)")


def normalise(query: str | None) -> str:
    """One running text per statement shape: literals as `?`, IN lists as (?…), whitespace collapsed.

    >>> normalise("SELECT * FROM t WHERE id = 42 AND name = 'x''y'")
    'SELECT * FROM t WHERE id = ? AND name = ?'
    >>> normalise("select a1 from t where id in (1, 2,3)")
    'select a1 from t where id in (?…)'
    """
    flat = " ".join(_LITERAL.sub("?", query or "").split())
    return _IN_LIST.sub("(?…)", flat)


@dataclass(frozen=True)
class RunningGroup:
    application_name: str
    user: str | None
    database: str | None
    query: str  # normalised
    queryid: int | None
    count: int
    blocked: int  # of them waiting on a heavyweight lock now
    longest_s: float | None
    pids: tuple[int, ...]


def is_blocked(r: Running) -> bool:
    return (r.wait_event or "").startswith("Lock:") or r.wait_event == "Lock"


def group_running(running: Iterable[Running]) -> list[RunningGroup]:
    buckets: dict[tuple[str, str | None, str | None, str], list[Running]] = {}
    for r in running:
        buckets.setdefault((r.application_name, r.user, r.database, normalise(r.query)), []).append(r)
    groups = [
        RunningGroup(
            application_name=app,
            user=user,
            database=db,
            query=query,
            queryid=next((r.queryid for r in members if r.queryid is not None), None),
            count=len(members),
            blocked=sum(1 for r in members if is_blocked(r)),
            longest_s=max((r.duration_s for r in members if r.duration_s is not None), default=None),
            pids=tuple(sorted(r.pid for r in members)),
        )
        for (app, user, db, query), members in buckets.items()
    ]
    return sorted(groups, key=lambda g: (-g.count, -(g.longest_s or 0), g.application_name, g.query))


def blocked_by_queryid(running: Iterable[Running]) -> dict[int, list[int]]:
    """queryid -> pids of its sessions waiting on a lock right now."""
    out: dict[int, list[int]] = {}
    for r in running:
        if r.queryid is not None and is_blocked(r):
            out.setdefault(r.queryid, []).append(r.pid)
    return out
