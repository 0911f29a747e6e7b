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

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pgdoctor import queries
from pgdoctor.collect.activity import ActivityRow, collect_activity
from pgdoctor.collect.server import ServerInfo, collect_server
from pgdoctor.db import Database
from pgdoctor.errors import PgDoctorError
from pgdoctor.secrets import mask_rows

# Extension versions whose column sets differ (see queries/statements/); 1.4 is the oldest an
# extension still installable on PostgreSQL 13+ can be at.
EXTENSION_VERSIONS: tuple[queries.Version, ...] = ((1, 4), (1, 8), (1, 9), (1, 10), (1, 11), (1, 12))

QUERIES = {
    "statements": EXTENSION_VERSIONS,
    "statements_top": EXTENSION_VERSIONS,
    "statements_cumulative": EXTENSION_VERSIONS,
    "statements_baseline": EXTENSION_VERSIONS,
    "statements_delta": EXTENSION_VERSIONS,
    "statements_info": tuple(v for v in EXTENSION_VERSIONS if v >= (1, 9)),
    "statements_extension": queries.SERVER_VERSIONS,
}

# --sort name -> the column of queries/statements_top it orders by (descending, on the server; the
# statement's CASE on %(sort)s spells the same).
ORDER = {
    "total": "total_exec_ms",
    "mean": "mean_exec_ms",
    "calls": "calls",
    "rows": "rows",
    "io": "io_blks",  # blocks read from outside shared buffers: shared + local + temp
    "temp": "temp_blks_written",
    "plan": "total_plan_ms",
}
SORTS = tuple(ORDER)

# How many statements a snapshot keeps per order.
SNAPSHOT_LIMIT = 50

SETTINGS = (
    "pg_stat_statements.max",
    "pg_stat_statements.track",
    "pg_stat_statements.track_planning",
    "shared_preload_libraries",
    "track_io_timing",
    "compute_query_id",
    "work_mem",
)

# Availability.status values
OK = "ok"
NOT_INSTALLED = "not_installed"  # the server has no pg_stat_statements at all (contrib not installed)
NOT_PRELOADED = "not_preloaded"  # not in shared_preload_libraries: nothing is being counted
NOT_CREATED = "not_created"  # loaded, but CREATE EXTENSION was not run in this database
NO_ACCESS = "no_access"  # the view exists but this role may not read it (schema or view privilege)
UNSUPPORTED = "unsupported"  # installed at a version older than pgdoctor reads
STATUSES = (OK, NOT_INSTALLED, NOT_PRELOADED, NOT_CREATED, NO_ACCESS, UNSUPPORTED)


@dataclass(frozen=True)
class Availability:
    """Whether pg_stat_statements can be read in the connected database, and if not, why."""

    status: str  # one of STATUSES
    database: str  # the database pgdoctor is connected to (where the extension must be created)
    version: str | None  # installed version (pg_extension.extversion)
    schema: str | None  # the schema it was created in
    default_version: str | None  # the version the server's files ship (ALTER EXTENSION ... UPDATE target)
    loaded: bool  # the library is loaded through shared_preload_libraries
    preload_libraries: str | None  # shared_preload_libraries, None when this role may not see it
    detail: str  # the server's own words when reading failed


@dataclass(frozen=True)
class StatementRow:
    """One pg_stat_statements entry (or its change over --interval); times in milliseconds."""

    userid: int
    dbid: int
    toplevel: bool
    queryid: int | None  # None: another role's statement this role may not identify
    query: str | None
    username: str | None
    datname: str | None
    calls: int
    total_exec_ms: float
    mean_exec_ms: float | None
    plans: int | None  # None before extension 1.8
    total_plan_ms: float | None
    rows: int
    shared_blks_hit: int
    shared_blks_read: int
    local_blks_read: int
    temp_blks_read: int
    temp_blks_written: int
    io_blks: int
    io_ms: float
    parallel_workers_to_launch: int | None  # extension 1.12+
    parallel_workers_launched: int | None
    entry_age_s: float | None  # seconds since stats_since (extension 1.11+)
    appeared: bool  # --interval: new (or evicted and back) since the first read, counted whole


@dataclass(frozen=True)
class Totals:
    """Over every statement (not only the listed ones), pgdoctor's own left out."""

    entries: int  # statements pg_stat_statements holds now
    all_exec_ms: float  # execution time of all top-level statements
    hidden: int  # entries whose queryid and text this role may not see
    spilling: int  # statements that wrote temp files
    all_shared_blks_hit: int
    all_shared_blks_read: int
    evicted: int | None  # --interval: statements of the first read gone at the second
    appeared: int  # --interval: statements new since the first read


@dataclass(frozen=True)
class Top:
    """The first `limit` statements in one order, as the server sorted them."""

    totals: Totals | None  # None when no statement matched
    statements: list[StatementRow]


@dataclass(frozen=True)
class InfoRow:
    dealloc: int
    stats_reset: str | None  # ISO 8601
    stats_reset_age_s: float | None


@dataclass(frozen=True)
class StatementsData:
    server: ServerInfo
    activity: list[ActivityRow]  # every backend; analysis lists the statements running now
    extension: Availability
    interval_s: float | None  # --interval: figures are the difference between two reads
    tops: dict[str, Top]  # per --sort name
    info: InfoRow | None  # pg_stat_statements_info (1.9+)
    # A snapshot's: it holds the top this many statements of every order, unfiltered (a command's
    # --limit, --database and --user then pick from those). None for a live read, which sorted, limited
    # and filtered on the server as the command asked.
    snapshot_per_order: int | None


@dataclass(frozen=True)
class _Extension:
    database: str
    version: str | None
    schema: str | None
    schema_ident: str | None
    default_version: str | None
    loaded: bool
    preload_libraries: str | None


@dataclass(frozen=True)
class _RankedRow(StatementRow):
    entries: int
    evicted: int | None
    all_exec_ms: float
    hidden: int
    spilling: int
    all_shared_blks_hit: int
    all_shared_blks_read: int
    appeared_total: int
    own_candidates: int  # pgdoctor's own statements among the candidates


@dataclass(frozen=True)
class _BaselineRow:
    userid: int
    dbid: int
    toplevel: bool
    queryid: int
    calls: int
    total_exec_ms: float
    plans: int | None
    total_plan_ms: float | None
    rows: int
    shared_blks_hit: int
    shared_blks_read: int
    local_blks_read: int
    temp_blks_read: int
    temp_blks_written: int
    io_ms: float
    parallel_workers_to_launch: int | None
    parallel_workers_launched: int | None
    entry_age_s: float | None


_STATEMENT_FIELDS = tuple(f.name for f in dataclasses.fields(StatementRow))


def in_preload_list(setting: str | None) -> bool | None:
    """Whether shared_preload_libraries names pg_stat_statements (None when the setting is hidden)."""
    if setting is None:
        return None
    names = [part.strip().strip('"').rsplit("/", 1)[-1] for part in setting.split(",")]
    return any(name.removesuffix(".so") == "pg_stat_statements" for name in names)


def availability(db: Database) -> tuple[Availability, str | None]:
    """Where the extension stands, and its schema's quoted name when it can be read."""
    sql = queries.load("statements_extension", queries.server_version(db.server_version_num))
    ext = db.rows(sql, _Extension)[0]
    loaded = ext.loaded or bool(in_preload_list(ext.preload_libraries))
    if ext.version is None:
        if ext.default_version is None:
            status = NOT_INSTALLED
        elif not loaded:
            status = NOT_PRELOADED
        else:
            status = NOT_CREATED
    elif not loaded:
        status = NOT_PRELOADED
    else:
        status = OK
    detail = ""
    if status == OK and ext.version is not None:
        try:
            queries.pick("statements", queries.parse_version(ext.version))
        except (PgDoctorError, ValueError) as exc:
            status, detail = UNSUPPORTED, str(exc)
    found = Availability(
        status=status,
        database=ext.database,
        version=ext.version,
        schema=ext.schema,
        default_version=ext.default_version,
        loaded=loaded,
        preload_libraries=ext.preload_libraries,
        detail=detail,
    )
    return found, ext.schema_ident


def _unavailable(found: Availability, exc: PgDoctorError, sqlstate: str | None) -> Availability | None:
    """The Availability a failed read means, or None when the failure is not about availability."""
    if sqlstate == "55000" and "shared_preload_libraries" in exc.message:
        return dataclasses.replace(found, status=NOT_PRELOADED, loaded=False, detail=exc.message)
    if sqlstate == "42501":
        return dataclasses.replace(found, status=NO_ACCESS, detail=exc.message)
    return None


class _Reader:
    """The SQL for one installed extension version, composed from queries/statements*/.

    The version's column set reads the function behind the view: pg_stat_statements(true) where query
    texts are needed, pg_stat_statements(false) where they are not (it skips reading the texts file).
    """

    def __init__(self, version: str, schema_ident: str, texts: bool = True) -> None:
        self.version = queries.parse_version(version)
        function = f"{schema_ident}.pg_stat_statements"
        self.info_view = f"{schema_ident}.pg_stat_statements_info"
        columns = queries.load("statements", self.version)
        self.texts = texts
        self.schema_ident = schema_ident
        self.with_text = columns.replace("{pgss}", f"{function}({'true' if texts else 'false'})")
        self.without_text = columns.replace("{pgss}", f"{function}(false)")

    def top_sql(self, interval: bool) -> str:
        """The top statements in the order of the `sort` parameter: cumulative, or over the interval."""
        name = "statements_delta" if interval else "statements_cumulative"
        source = queries.load(name, self.version)
        return (
            queries.load("statements_top", self.version)
            .replace("{source_counts}", source.replace("{statements}", self.without_text))
            .replace("{source}", source.replace("{statements}", self.with_text))
        )

    def baseline(self) -> str:
        return queries.load("statements_baseline", self.version).replace("{statements}", self.without_text)

    def info(self) -> str | None:
        if self.version < (1, 9):
            return None
        return queries.load("statements_info", self.version).replace("{info}", self.info_view)


# Candidates kept beside the top N for pgdoctor's own statements, which sort first among them. pgdoctor
# sends a few dozen distinct statements per role and database it connects as; when they fill the room
# (or nothing comes back, which may be why), the query runs again with room for every entry.
OWN_ROOM = 1000


# pg_stat_statements converts each text from the encoding of the database it ran in to this one's, and
# fails for all when one cannot be (an emoji from a UTF8 database, read in an EUC_JP or LATIN1 one):
# character_not_in_repertoire, untranslatable_character, or no conversion between the two at all.
UNCONVERTIBLE = ("22021", "22P05", "42883")
UNCONVERTIBLE_QUERY = (
    "<query texts not readable in this database's encoding: a statement from a database of another "
    "encoding has characters it lacks; connect to a UTF8 database to see them>"
)


def _top_any_text(db: Database, reader: _Reader, interval: bool, params: dict[str, Any]) -> Top:
    """The top statements; without their texts when the server cannot convert them all."""
    try:
        return _top(db, reader.top_sql(interval), params)
    except PgDoctorError as exc:
        if getattr(exc.__cause__, "sqlstate", None) not in UNCONVERTIBLE:
            raise
    blind = _Reader(".".join(map(str, reader.version)), reader.schema_ident, texts=False)
    top = _top(db, blind.top_sql(interval), params)
    statements = [
        s if s.queryid is None else dataclasses.replace(s, query=UNCONVERTIBLE_QUERY) for s in top.statements
    ]
    return dataclasses.replace(top, statements=statements)


def _top(db: Database, sql: str, params: dict[str, Any]) -> Top:
    rows = db.rows(sql, _RankedRow, {**params, "own_room": OWN_ROOM})
    if len(rows) < params["limit"] and (not rows or rows[0].own_candidates >= OWN_ROOM):
        rows = db.rows(sql, _RankedRow, {**params, "own_room": 2**31 - 1 - params["limit"]})
    statements = [StatementRow(**{name: getattr(r, name) for name in _STATEMENT_FIELDS}) for r in rows]
    statements = mask_rows(statements)  # no password in any output or snapshot
    if not rows:
        return Top(totals=None, statements=[])
    first = rows[0]
    totals = Totals(
        entries=first.entries,
        all_exec_ms=first.all_exec_ms,
        hidden=first.hidden,
        spilling=first.spilling,
        all_shared_blks_hit=first.all_shared_blks_hit,
        all_shared_blks_read=first.all_shared_blks_read,
        evicted=first.evicted,
        appeared=first.appeared_total,
    )
    return Top(totals=totals, statements=statements)


def _baseline_params(rows: list[_BaselineRow]) -> dict[str, list[Any]]:
    """The first read as one array per column, the shape queries/statements_delta unnests."""
    names = [f.name for f in dataclasses.fields(_BaselineRow)]
    return {name: [getattr(r, name) for r in rows] for name in names}


def capture(db: Database, server: ServerInfo, activity: list[ActivityRow]) -> StatementsData:
    """The dataset for a snapshot: the top SNAPSHOT_LIMIT statements of every order, unfiltered, with the
    server and pg_stat_activity it read once."""
    return _collect(db, server, lambda: activity, SORTS, SNAPSHOT_LIMIT, None, None, None, None, True)


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
        reader = _Reader(found.version, schema_ident)
        params: dict[str, Any] = {"limit": limit, "database": database, "user": user}
        try:
            if interval_s is not None:
                baseline = db.rows(reader.baseline(), _BaselineRow)
                (sleep or db.sleep)(interval_s)  # db.sleep keeps idle_session_timeout off
                params.update(_baseline_params(baseline))
            for sort in sorts:
                tops[sort] = _top_any_text(db, reader, interval_s is not None, {**params, "sort": sort})
            info_sql = reader.info()
            if info_sql is not None:
                info = db.rows(info_sql, InfoRow)[0]
        except PgDoctorError as exc:
            cause = exc.__cause__
            changed = _unavailable(found, exc, getattr(cause, "sqlstate", None))
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
