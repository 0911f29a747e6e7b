"""Collect what eats the server's time: pg_stat_statements, found and read whatever its version.

The SQL is picked by the INSTALLED extension version (pg_extension.extversion), never by the server
version: a server upgraded without `ALTER EXTENSION pg_stat_statements UPDATE` keeps the old columns.
The extension may live in any schema; its name is quoted by the server (quote_ident).

Sorting and LIMIT happen on the server; the share of all statement time comes from a window over every
row. A snapshot holds the top `SNAPSHOT_LIMIT` statements in every order, so `--snapshot` answers any
`--sort` (and `--limit` up to that) exactly as a live run did at capture time.

When the extension cannot be read the dataset says why (`Availability.status`) instead of failing, so
`pgdoctor snapshot` still works and an offline analysis reports exactly what a live one does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pgdoctor import queries
from pgdoctor.collect.activity import ActivityRow, collect_activity
from pgdoctor.collect.server import ServerInfo, collect_server
from pgdoctor.collect.statements_rows import (
    EXTENSION_VERSIONS,
    NO_ACCESS,
    NOT_CREATED,
    NOT_INSTALLED,
    NOT_PRELOADED,
    OK,
    ORDER,
    SETTINGS,
    SNAPSHOT_LIMIT,
    SORTS,
    STATUSES,
    UNSUPPORTED,
    Availability,
    InfoRow,
    StatementRow,
    StatementsData,
    Top,
    Totals,
)
from pgdoctor.collect.statements_sql import (
    UNCONVERTIBLE_QUERY,
    BaselineRow,
    Reader,
    availability,
    baseline_params,
    in_preload_list,
    top_any_text,
    unavailable_as,
)
from pgdoctor.db import Database
from pgdoctor.errors import PgDoctorError

__all__ = [  # the rows and constants live in statements_rows; importers name them from here
    "EXTENSION_VERSIONS", "NOT_CREATED", "NOT_INSTALLED", "NOT_PRELOADED", "NO_ACCESS", "OK", "ORDER",
    "SETTINGS", "SNAPSHOT_LIMIT", "SORTS", "STATUSES", "UNCONVERTIBLE_QUERY", "UNSUPPORTED",
    "Availability", "InfoRow", "StatementRow", "StatementsData", "Top", "Totals", "availability",
    "capture", "collect", "from_activity", "in_preload_list",
]  # fmt: skip

QUERIES = {
    "statements": EXTENSION_VERSIONS,
    "statements_top": EXTENSION_VERSIONS,
    "statements_cumulative": EXTENSION_VERSIONS,
    "statements_baseline": EXTENSION_VERSIONS,
    "statements_delta": EXTENSION_VERSIONS,
    "statements_info": tuple(v for v in EXTENSION_VERSIONS if v >= (1, 9)),
    "statements_extension": queries.SERVER_VERSIONS,
}


def capture(db: Database, server: ServerInfo, activity: list[ActivityRow]) -> StatementsData:
    """The dataset for a snapshot: the top SNAPSHOT_LIMIT statements of every order, unfiltered, with the
    server and pg_stat_activity it read once."""
    return _collect(db, server, lambda: activity, SORTS, SNAPSHOT_LIMIT, None, None, None, None, True)


def from_activity(
    db: Database, server: ServerInfo, activity: list[ActivityRow], *, sort: str = "total", limit: int = 10
) -> StatementsData:
    """The top `limit` statements in one order, with a pg_stat_activity read the caller made (`pgdoctor
    triage`): where the extension stands, one read of pg_stat_statements, and its info row (1.9+)."""
    return _collect(db, server, lambda: activity, (sort,), limit, None, None, None, None, False)


def collect(
    db: Database,
    *,
    sorts: tuple[str, ...] = SORTS,
    limit: int = SNAPSHOT_LIMIT,
    database: str | None = None,
    user: str | None = None,
    interval_s: float | None = None,
    sleep: Callable[[float], None] | None = None,
) -> StatementsData:
    """The top `limit` statements in each of `sorts` (in `database`, by `user`), and what runs now.

    With `interval_s`, read every statement's counters, wait, and report the difference.
    """
    server = collect_server(db, SETTINGS)
    return _collect(
        db, server, lambda: collect_activity(db), sorts, limit, database, user, interval_s, sleep, False
    )


def _collect(
    db: Database,
    server: ServerInfo,
    activity: Callable[[], list[ActivityRow]],
    sorts: tuple[str, ...],
    limit: int,
    database: str | None,
    user: str | None,
    interval_s: float | None,
    sleep: Callable[[float], None] | None,
    snapshot: bool,
) -> StatementsData:
    for sort in sorts:
        if sort not in ORDER:
            raise ValueError(f"unknown sort {sort!r}")
    found, schema_ident = availability(db)
    tops: dict[str, Top] = {}
    info: InfoRow | None = None
    if found.status == OK and found.version is not None and schema_ident is not None:
        reader = Reader(found.version, schema_ident)
        params: dict[str, Any] = {"limit": limit, "database": database, "user": user}
        try:
            if interval_s is not None:
                baseline = db.rows(reader.baseline(), BaselineRow)
                (sleep or db.sleep)(interval_s)  # db.sleep keeps idle_session_timeout off
                params.update(baseline_params(baseline))
            for sort in sorts:
                tops[sort] = top_any_text(db, reader, interval_s is not None, {**params, "sort": sort})
            info_sql = reader.info()
            if info_sql is not None:
                info = db.rows(info_sql, InfoRow)[0]
        except PgDoctorError as exc:
            cause = exc.__cause__
            changed = unavailable_as(found, exc, getattr(cause, "sqlstate", None))
            if changed is None:
                raise
            found, tops, info = changed, {}, None
    return StatementsData(
        server=server,
        activity=activity(),  # read last: what runs now, after the interval
        extension=found,
        interval_s=interval_s,
        tops=tops,
        info=info,
        snapshot_per_order=limit if snapshot else None,
    )
