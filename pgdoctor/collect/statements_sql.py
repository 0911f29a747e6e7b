"""The SQL of pg_stat_statements for the installed extension version: where the extension stands
(`availability`), and the top statements in one order (`top`), cumulative or over an interval."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pgdoctor import queries
from pgdoctor.collect.statements_rows import (
    NO_ACCESS,
    NOT_CREATED,
    NOT_INSTALLED,
    NOT_PRELOADED,
    OK,
    UNSUPPORTED,
    Availability,
    StatementRow,
    Top,
    Totals,
)
from pgdoctor.db import Database
from pgdoctor.errors import PgDoctorError
from pgdoctor.secrets import mask_rows


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
class BaselineRow:
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


def unavailable_as(found: Availability, exc: PgDoctorError, sqlstate: str | None) -> Availability | None:
    """The Availability a failed read means, or None when the failure is not about availability."""
    if sqlstate == "55000" and "shared_preload_libraries" in exc.message:
        return dataclasses.replace(found, status=NOT_PRELOADED, loaded=False, detail=exc.message)
    if sqlstate == "42501":
        return dataclasses.replace(found, status=NO_ACCESS, detail=exc.message)
    return None


class Reader:
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


def top_any_text(db: Database, reader: Reader, interval: bool, params: dict[str, Any]) -> Top:
    """The top statements; without their texts when the server cannot convert them all."""
    try:
        return _top(db, reader.top_sql(interval), params)
    except PgDoctorError as exc:
        if getattr(exc.__cause__, "sqlstate", None) not in UNCONVERTIBLE:
            raise
    blind = Reader(".".join(map(str, reader.version)), reader.schema_ident, texts=False)
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


def baseline_params(rows: list[BaselineRow]) -> dict[str, list[Any]]:
    """The first read as one array per column, the shape queries/statements_delta unnests."""
    names = [f.name for f in dataclasses.fields(BaselineRow)]
    return {name: [getattr(r, name) for r in rows] for name in names}
