"""The one connection pgdoctor opens: read-only, short timeouts, its own application_name.

psycopg is imported here and only here, so commands that never touch a server do not pay for it.
"""

from __future__ import annotations

import math
import os
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


# What every one of pgdoctor's transactions sets for itself, and only for itself (set_config(..., true) is
# SET LOCAL): the first statement of each read, sent in the same round trip (a pipeline ending in one
# Sync is one implicit transaction). Nothing outlives the transaction, so nothing leaks into another
# client's server connection behind a transaction-mode pooler. Every name is qualified: the search_path
# in force until this statement has run is the session's, which a database owner may have set.
# - search_path: only pg_catalog (pg_temp last), so no look-alike function or operator another role
#   created in public or in its own schema can ever run as the role pgdoctor connects as;
# - transaction_read_only: pgdoctor never writes;
# - statement_timeout (--timeout), lock_timeout (at most LOCK_TIMEOUT_MS: pgdoctor never queues behind
#   a lock), idle_in_transaction_session_timeout (--timeout);
# - application_name: pgdoctor's label while it reads. Not in the startup packet: PgBouncer 1.18 re-SETs
#   a client's startup application_name on each server connection it lends it, where it stays after
#   the client leaves, and labels the next client that sends none (measured: tests/test_pooler_live.py).
# The server's own pg_backend_pid() and client address come back with it (pooler detection).
PRELUDE = (
    "SELECT " + MARKER + " pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true), "
    "pg_catalog.set_config('transaction_read_only', 'on', true), "
    "pg_catalog.set_config('statement_timeout', '{ms}', true), "
    "pg_catalog.set_config('lock_timeout', '{lock_ms}', true), "
    "pg_catalog.set_config('idle_in_transaction_session_timeout', '{ms}', true), "
    "pg_catalog.set_config('application_name', '" + APPLICATION_NAME + "', true), "
    "pg_catalog.pg_backend_pid(), pg_catalog.host(pg_catalog.inet_client_addr()), "
    "pg_catalog.inet_client_port(), pg_catalog.current_setting('idle_session_timeout', true)"
)
# lock_timeout is at most this: pgdoctor gives up on a lock rather than queue behind it.
LOCK_TIMEOUT_MS = 1000
# The client-side deadline of each read: --timeout plus this, so the server's statement_timeout (the
# clearer error) fires first when the server is alive; when it is not (a stopped backend, a dead network,
# a pooler's queue) the read is abandoned and the connection shut at this deadline.
DEADLINE_MARGIN_S = 1.0


class Database:
    """A connected session plus what every collector needs to know about the server."""

    def __init__(self, conn: psycopg.Connection[Any], timeout_s: float) -> None:
        self.conn = conn
        self.timeout_s = timeout_s
        self.server_version_num: int = conn.info.server_version
        # reported by the server at startup: no round trip needed
        reported = conn.info.parameter_status("server_version")
        self.server_version: str = reported or str(self.server_version_num)
        ms = max(int(timeout_s * 1000), 1)
        prelude = PRELUDE.format(ms=ms, lock_ms=min(ms, LOCK_TIMEOUT_MS))
        if conn.info.parameter_status("server_encoding") not in ("UTF8", None):
            # Texts in pg_stat_activity are in the bytes of whichever database each session is in, and
            # a server converts (or, from SQL_ASCII, checks) what it sends to a client encoding other
            # than its own: one foreign byte fails the whole read. Client encoding SQL_ASCII takes the
            # bytes as they are (the text loader decodes them). Local too: nothing of it outlives the read.
            prelude += ", pg_catalog.set_config('client_encoding', 'SQL_ASCII', true)"
        self.prelude = prelude.encode()
        # Filled by the first read: whether a pooler or proxy stands between pgdoctor and the server.
        self.via_pooler: bool | None = None
        self.idle_session_timeout_ms = 0
        # PgBouncer answers the startup itself, with a random cancel key: a "pid" no PostgreSQL backend
        # can have (pids are positive and below 2^22 on Linux) means a pooler before any read is made.
        key_pid = conn.info.backend_pid
        self.pooler_suspected = not 0 < key_pid < 1 << 22

    def rows(
        self, sql: str, row_type: type[T], params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> list[T]:
        """Run one query in a transaction of its own and return its rows as `row_type`."""
        from psycopg.rows import class_row

        return self._read(sql, params, class_row(row_type))

    def tuples(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """Run one query in a transaction of its own and return plain tuples (a sampling loop's hot read)."""
        return self._read(sql, params, None)

    def sleep(self, seconds: float) -> None:
        """Wait without letting idle_session_timeout end the session: a cheap read before it would."""
        import time

        end = time.monotonic() + seconds
        step = self.idle_session_timeout_ms / 2000 if self.idle_session_timeout_ms > 0 else seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(left, step))
            if step < seconds and end - time.monotonic() > 0:
                self._read("SELECT 1", None, None)

    def _read(self, sql: str, params: Any, row_factory: Any) -> list[Any]:
        import psycopg

        deadline = _Deadline(self.conn, self.timeout_s + DEADLINE_MARGIN_S)
        try:
            with deadline, self.conn.pipeline():
                first = self.conn.execute(self.prelude, prepare=False)
                cur = self.conn.cursor(row_factory=row_factory) if row_factory else self.conn.cursor()
                cur.execute(mark(sql).encode(), params, prepare=False)
            prelude = first.fetchone()
            result = cur.fetchall()
        except psycopg.Error as exc:
            if deadline.fired:
                raise self.deadline_error() from exc
            raise query_error(exc, self.timeout_s) from exc
        if deadline.fired:  # the answer came as the deadline fired: the connection is shut all the same
            raise self.deadline_error()
        if prelude is not None and self.via_pooler is None:
            self._learn(prelude[6], prelude[7], prelude[8], prelude[9])
        return result

    def _learn(self, server_pid: int, client_addr: str | None, client_port: int | None, idle: Any) -> None:
        """What the first read tells about the route to the server and the session's own limits."""
        self.via_pooler = server_pid != self.conn.info.backend_pid or not same_endpoint(
            local_endpoint(self.conn.pgconn.socket), client_addr, client_port
        )
        self.idle_session_timeout_ms = setting_ms(idle)

    def deadline_error(self) -> PgDoctorError:
        """No answer within --timeout plus the margin: say where pgdoctor was left waiting."""
        limit = f"--timeout {self.timeout_s:g}s (+{DEADLINE_MARGIN_S:g}s)"
        if self.via_pooler or self.pooler_suspected:
            return PgDoctorError(
                f"connected to a pooler, but it gave pgdoctor no server connection within {limit}: "
                "its pool for this database and user is full and clients wait in its queue. Connect to "
                "PostgreSQL's own port to see who holds the server's connections, and look at the pooler "
                "(PgBouncer: SHOW POOLS on its admin console, cl_waiting and sv_active)",
                ExitCode.CANNOT_CONNECT,
            )
        if self.via_pooler is None:
            return PgDoctorError(
                f"the server accepted the connection but did not answer pgdoctor's first query within "
                f"{limit}; gave up. A pooler in between may have no free server connection (connect to "
                "PostgreSQL's own port; look at the pooler's SHOW POOLS), or the server or the network "
                "is stalled",
                ExitCode.CANNOT_CONNECT,
            )
        return PgDoctorError(
            f"no answer from the server within {limit} (statement_timeout did not end the wait): "
            "pgdoctor's backend, the server or the network is stalled; gave up",
            ExitCode.QUERY_FAILED,
        )


_TIME_UNITS_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


def setting_ms(value: Any) -> int:
    """A time setting as current_setting() shows it ('0', '1s', '500ms', '2min') in milliseconds; 0 when
    unset or unreadable.

    >>> setting_ms("1s"), setting_ms("500ms"), setting_ms("2min"), setting_ms("0"), setting_ms(None)
    (1000, 500, 120000, 0, 0)
    """
    m = re.fullmatch(r"\s*(\d+)\s*(us|ms|s|min|h|d)?\s*", str(value or "0"))
    return int(int(m.group(1)) * _TIME_UNITS_MS[m.group(2) or "ms"]) if m else 0


class _Deadline:
    """A watchdog for one read: at expiry it shuts the connection's socket down (not close: the file
    descriptor stays libpq's), which wakes the waiting read with an error whatever the other end does.
    A cancel request would not help: a stopped backend or a pooler's queue never acts on it."""

    def __init__(self, conn: psycopg.Connection[Any], seconds: float) -> None:
        self.conn = conn
        self.seconds = seconds
        self.fired = False
        self.timer: Any = None

    def __enter__(self) -> _Deadline:
        import threading

        self.timer = threading.Timer(self.seconds, self._fire)
        self.timer.daemon = True
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.timer.cancel()

    def _fire(self) -> None:
        import socket

        self.fired = True
        try:
            with socket.socket(fileno=os.dup(self.conn.pgconn.socket)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except Exception:  # the connection is closed already: nothing left to wake
            return


def local_endpoint(fd: int) -> tuple[str, int] | None:
    """Address and port of pgdoctor's own end of the connection; None for a unix socket."""
    import socket

    try:
        with socket.socket(fileno=os.dup(fd)) as sock:
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                return None
            name = sock.getsockname()
    except OSError:
        return None
    return str(name[0]), int(name[1])


def same_endpoint(local: tuple[str, int] | None, addr: str | None, port: int | None) -> bool:
    """Whether the client address and port the server sees are pgdoctor's own socket's."""
    import ipaddress

    if local is None or addr is None:
        return local is None and addr is None  # both a unix socket
    if port != local[1]:
        return False

    def plain(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        try:
            ip = ipaddress.ip_address(text.split("%", maxsplit=1)[0])
        except ValueError:
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        return ip

    return plain(addr) == plain(local[0])


def _text_loader(server_encoding: str | None) -> type:
    """Text decoded as UTF-8, else in the server's encoding, undecodable bytes escaped (\\xff), never an
    error: other databases' sessions put bytes of their own encoding in pg_stat_activity, and an
    SQL_ASCII database holds whatever bytes it was sent."""
    from psycopg.adapt import Loader

    fallback = "utf-8"
    if server_encoding not in (None, "UTF8", "SQL_ASCII"):
        from psycopg._encodings import pg2pyenc

        try:
            fallback = pg2pyenc(server_encoding.encode())
        except Exception:  # a server encoding Python has no codec for: escape what is not UTF-8
            fallback = "utf-8"

    class EscapingText(Loader):
        def load(self, data: Any) -> str:
            raw = bytes(data)
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                return raw.decode(fallback, "backslashreplace")

    return EscapingText


# text, varchar, bpchar, name, "char", unknown (their arrays use the same loader for their elements)
TEXT_OIDS = (25, 1043, 1042, 19, 18, 705)


@contextmanager
def connect(dsn: str | None, timeout_s: float = 5.0) -> Iterator[Database]:
    """Open pgdoctor's single connection; translate every failure into a one-line PgDoctorError."""
    import psycopg

    conninfo = resolve_dsn(dsn)
    try:
        conn = psycopg.connect(
            conninfo,
            autocommit=True,
            # Nothing that a pooler would carry over to a server connection other clients then use:
            # no application_name (each transaction sets its own, above; an empty one also keeps
            # $PGAPPNAME out), no options. client_encoding is pinned (over PGCLIENTENCODING, the DSN's
            # and the role's): PgBouncer re-SETs it for each client, so it does not leak.
            application_name="",
            client_encoding="UTF8",
            connect_timeout=max(math.ceil(timeout_s), 2),
            # no server-side prepared statements: a transaction-mode pooler cannot keep them
            prepare_threshold=None,
        )
    except psycopg.Error as exc:
        raise connect_error(exc, conninfo) from exc
    try:
        loader = _text_loader(conn.info.parameter_status("server_encoding"))
        for oid in TEXT_OIDS:
            conn.adapters.register_loader(oid, loader)
        # Every Python int goes as int8 (psycopg picks int2/int4/int8 by value): a parameter's type is
        # part of the statement's query id, and pgdoctor's statements keep one id each.
        from psycopg.types.numeric import Int8Dumper

        conn.adapters.register_dumper(int, Int8Dumper)
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
