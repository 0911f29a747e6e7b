"""The one connection pgdoctor opens: read-only, short timeouts, its own application_name.

psycopg is imported here and only here, so commands that never touch a server do not pay for it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from pgdoctor import APPLICATION_NAME
from pgdoctor.dsn import redact, resolve_dsn
from pgdoctor.errors import ExitCode, PgDoctorError

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")

# Every statement pgdoctor sends carries this comment after its first keyword, so `slow-queries` can
# leave pgdoctor's own statements out of pg_stat_statements. (pg_stat_statements stores a statement's
# text from its first token: a comment in front of it is lost. The queryid ignores comments.)
MARKER = "/* pgdoctor */"
_FIRST_WORD = re.compile(r"^(\s*(?:--[^\n]*\n\s*)*)([A-Za-z]+)")


def mark(sql: str) -> str:
    """`SELECT …` -> `SELECT /* pgdoctor */ …`, past any leading `--` comment lines."""
    if MARKER in sql:
        return sql
    return _FIRST_WORD.sub(lambda m: f"{m.group(1)}{m.group(2)} {MARKER}", sql, count=1)


RESERVED_SLOTS_HELP = (
    "the server has no ordinary connection slot left (max_connections minus "
    "superuser_reserved_connections and, on PostgreSQL 16+, reserved_connections are all in use); "
    "connect as a superuser, or on PostgreSQL 16+ as a role granted pg_use_reserved_connections, "
    "to use a reserved slot and run `pgdoctor connections` to see who holds them"
)


class Database:
    """A connected session plus what every collector needs to know about the server."""

    def __init__(self, conn: psycopg.Connection[Any], timeout_s: float) -> None:
        self.conn = conn
        self.timeout_s = timeout_s
        self.server_version_num: int = conn.info.server_version
        # reported by the server at startup: no round trip needed
        reported = conn.info.parameter_status("server_version")
        self.server_version: str = reported or str(self.server_version_num)

    @property
    def major(self) -> int:
        return self.server_version_num // 10000

    def rows(
        self, sql: str, row_type: type[T], params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> list[T]:
        """Run one query and return its rows as `row_type` (a frozen dataclass)."""
        from psycopg.rows import class_row

        with self.conn.cursor(row_factory=class_row(row_type)) as cur:
            try:
                cur.execute(mark(sql).encode(), params)
            except Exception as exc:
                raise query_error(exc, self.timeout_s) from exc
            return cur.fetchall()

    def scalar(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> Any:
        try:
            row = self.conn.execute(mark(sql).encode(), params).fetchone()
        except Exception as exc:
            raise query_error(exc, self.timeout_s) from exc
        return None if row is None else row[0]


@contextmanager
def connect(dsn: str | None, timeout_s: float = 5.0) -> Iterator[Database]:
    """Open pgdoctor's single connection; translate every failure into a one-line PgDoctorError."""
    import psycopg

    conninfo = resolve_dsn(dsn)
    ms = max(int(timeout_s * 1000), 1)
    try:
        conn = psycopg.connect(
            conninfo,
            autocommit=True,
            application_name=APPLICATION_NAME,
            connect_timeout=max(int(timeout_s), 2),
        )
    except psycopg.Error as exc:
        raise connect_error(exc, conninfo) from exc
    try:
        # Each statement runs in its own read-only transaction; pgdoctor never holds a snapshot open,
        # never waits behind a lock for long, and never writes.
        settings = {
            "default_transaction_read_only": "on",
            "statement_timeout": ms,
            "lock_timeout": min(ms, 1000),
            "idle_in_transaction_session_timeout": ms,
        }
        conn.execute("; ".join(f"SET {MARKER} {k} = {v}" for k, v in settings.items()).encode())
        yield Database(conn, timeout_s)
    except psycopg.Error as exc:
        raise query_error(exc, timeout_s) from exc
    finally:
        conn.close()


def connect_error(exc: Exception, conninfo: str) -> PgDoctorError:
    """One line that says why the connection failed and what to do; never the password."""
    raw = " ".join(str(exc).split())
    raw = re.sub(r"^connection failed: ", "", raw)
    low = raw.lower()
    code = ExitCode.CANNOT_CONNECT
    if "too many clients already" in low:
        # SQLSTATE 53300 from InitProcess: every one of max_connections is taken, the reserved slots too
        # (an application that connects as a superuser, or superuser_reserved_connections = 0). No SQL
        # client gets in, a superuser neither: advising a superuser connection would be useless.
        msg = (
            "cannot connect: every connection slot is in use, the reserved ones too (max_connections "
            "reached: an application connecting as a superuser, or superuser_reserved_connections = 0), "
            "so no SQL client gets in, superuser or not; on the database host (or in its container) "
            "`pgdoctor connections --ps` with the same --dsn reads who holds them from the backends' "
            f"process titles, without connecting (server said: {raw})"
        )
    elif "remaining connection slots are reserved" in low and "superuser attribute" in low:
        # PostgreSQL 16+ when only superuser_reserved_connections are left: a role granted
        # pg_use_reserved_connections is refused as well, so only the superuser advice applies.
        msg = (
            "cannot connect: the server has only its superuser_reserved_connections slots left (every "
            "ordinary and reserved_connections slot is in use); connect as a superuser to use one and run "
            f"`pgdoctor connections` to see who holds the others (server said: {raw})"
        )
    elif "remaining connection slots are reserved" in low:
        msg = f"cannot connect: {RESERVED_SLOTS_HELP} (server said: {raw})"
    elif "connection refused" in low:
        where = raw.split(" failed:")[0]
        msg = f"cannot connect: {where} refused the connection; is PostgreSQL running and listening there?"
    elif "timeout expired" in low:
        msg = (
            "cannot connect: no answer within connect_timeout; the server is overloaded, unreachable, "
            "or new sessions are stalled (raise --timeout to wait longer)"
        )
    elif "failed to resolve host" in low or "could not translate host name" in low:
        msg = f"cannot connect: unknown host ({raw})"
    elif "password authentication failed" in low or "no password supplied" in low:
        msg = f"cannot connect: authentication failed ({raw}); check the password, PGPASSWORD or ~/.pgpass"
    elif missing_db := re.search(r'database ".*" does not exist', raw, re.IGNORECASE):
        msg = f"cannot connect: {missing_db.group(0)}"
    elif ("invalid" in low and ("connection" in low or "uri" in low or "dsn" in low)) or 'missing "="' in low:
        msg = f"invalid connection string: {raw}"
        code = ExitCode.USAGE
    else:
        msg = f"cannot connect: {raw}"
    return PgDoctorError(redact(msg, conninfo), code)


def query_error(exc: Exception, timeout_s: float) -> PgDoctorError:
    """Map a server-side failure of one of pgdoctor's queries to its exit code."""
    if isinstance(exc, PgDoctorError):
        return exc
    sqlstate = getattr(exc, "sqlstate", None)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if sqlstate == "57014":
        return PgDoctorError(
            f"query cancelled after --timeout {timeout_s:g}s (statement_timeout); the server may be "
            "overloaded: retry with a larger --timeout",
            ExitCode.QUERY_FAILED,
        )
    if sqlstate == "55P03":
        return PgDoctorError(
            "gave up waiting for a lock (lock_timeout): pgdoctor never queues behind other sessions",
            ExitCode.QUERY_FAILED,
        )
    if sqlstate == "42501":
        return PgDoctorError(
            f"insufficient privilege: {first}; GRANT pg_monitor TO <role> gives pgdoctor what it reads",
            ExitCode.PRIVILEGE,
        )
    if sqlstate in ("57P01", "57P02", "57P03") or (sqlstate is None and "closed" in first.lower()):
        return PgDoctorError(f"lost the connection to the server: {first}", ExitCode.CANNOT_CONNECT)
    return PgDoctorError(f"query failed: {first}", ExitCode.QUERY_FAILED)
