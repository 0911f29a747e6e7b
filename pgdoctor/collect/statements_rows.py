"""pg_stat_statements as pgdoctor keeps it: the statuses of the extension, the rows, the dataset (no I/O:
`collect.statements` reads them, `collect.statements_sql` holds the SQL)."""

from __future__ import annotations

from dataclasses import dataclass

from pgdoctor import queries
from pgdoctor.collect.activity import ActivityRow
from pgdoctor.collect.server import ServerInfo

# Extension versions whose column sets differ (see queries/statements/); 1.4 is the oldest an
# extension still installable on PostgreSQL 13+ can be at.
EXTENSION_VERSIONS: tuple[queries.Version, ...] = ((1, 4), (1, 8), (1, 9), (1, 10), (1, 11), (1, 12))

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
