"""Read PgBouncer's admin console: SHOW VERSION, POOLS, DATABASES, CLIENTS, SERVERS, CONFIG, STATS, LISTS.

The console (database `pgbouncer`, a role in `admin_users` or `stats_users`) is not PostgreSQL: it takes no
SET, no BEGIN, no `options` or `application_name` in the startup packet, and only the simple query
protocol. So this module has its own connect routine instead of `pgdoctor.db.connect`: autocommit, nothing
in the startup packet but user and database, a `ClientCursor` (the simple query protocol, always), a
client-side deadline on the connection and on each SHOW. It sends only the SHOW commands above: never SET,
PAUSE, KILL, RELOAD or anything else that changes PgBouncer.

Column sets differ across PgBouncer versions (1.18 split the cancel-request columns; later versions add
`prepared_statements`, `load_balance_hosts`…): every result is read by column name into a frozen
dataclass; a column the dataclass does not know is ignored, one an older PgBouncer lacks gets its default.
Times PgBouncer prints as text (`connect_time`, `request_time`) are turned into ages in seconds at capture
time, so a snapshot analyses exactly like live.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from pgdoctor.collect.connections import ConnectionsData
from pgdoctor.dsn import redact, resolve_dsn
from pgdoctor.errors import ExitCode, PgDoctorError

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")

QUERIES: dict[str, tuple[str, ...]] = {}  # no SQL files: the console speaks SHOW only

# The only commands pgdoctor ever sends to the console.
COMMANDS = ("VERSION", "POOLS", "DATABASES", "CLIENTS", "SERVERS", "CONFIG", "STATS", "LISTS")
DEADLINE_MARGIN_S = 1.0  # each SHOW's client-side deadline is --timeout plus this


@dataclass(frozen=True)
class PoolRow:
    """SHOW POOLS: one pool per (database, user)."""

    database: str
    user: str
    cl_active: int = 0
    cl_waiting: int = 0
    cl_active_cancel_req: int = 0  # 1.18+
    cl_waiting_cancel_req: int = 0  # 1.18+
    sv_active: int = 0
    sv_active_cancel: int = 0  # 1.18+
    sv_being_canceled: int = 0  # 1.18+
    sv_idle: int = 0
    sv_used: int = 0
    sv_tested: int = 0
    sv_login: int = 0
    maxwait: int = 0  # seconds of the longest wait in the queue
    maxwait_us: int = 0  # and its microseconds
    pool_mode: str | None = None  # 1.12+

    @property
    def maxwait_s(self) -> float:
        return self.maxwait + self.maxwait_us / 1e6

    @property
    def servers(self) -> int:
        return self.sv_active + self.sv_idle + self.sv_used + self.sv_tested + self.sv_login


@dataclass(frozen=True)
class DatabaseRow:
    """SHOW DATABASES: a database entry of [databases] (or an auto-database), with its pool limits."""

    name: str
    host: str | None = None
    port: int | None = None
    database: str | None = None
    force_user: str | None = None
    pool_size: int | None = None
    min_pool_size: int | None = None
    reserve_pool: int | None = None
    pool_mode: str | None = None  # None: the global pool_mode
    max_connections: int = 0  # max_db_connections of this database; 0 = unlimited
    current_connections: int = 0
    paused: int = 0
    disabled: int = 0


@dataclass(frozen=True)
class ConnRow:
    """SHOW CLIENTS / SHOW SERVERS: one client or server connection of PgBouncer."""

    type: str = ""
    user: str = ""
    database: str = ""
    state: str = ""
    addr: str | None = None
    port: int | None = None
    local_addr: str | None = None
    local_port: int | None = None
    connect_time: str | None = None
    request_time: str | None = None
    wait: int = 0
    wait_us: int = 0
    close_needed: int = 0
    ptr: str = ""
    link: str | None = None
    remote_pid: int | None = None
    tls: str | None = None
    application_name: str | None = None  # 1.18+
    # computed by pgdoctor at capture time from connect_time / request_time
    connect_age_s: float | None = None
    request_age_s: float | None = None

    @property
    def wait_s(self) -> float:
        return self.wait + self.wait_us / 1e6


@dataclass(frozen=True)
class StatsRow:
    """SHOW STATS: totals since start and averages over the last stats_period, per database."""

    database: str
    total_xact_count: int = 0
    total_query_count: int = 0
    total_xact_time: int = 0  # microseconds
    total_query_time: int = 0
    total_wait_time: int = 0
    avg_xact_count: int = 0
    avg_query_count: int = 0
    avg_xact_time: int = 0  # microseconds per transaction, last stats_period
    avg_query_time: int = 0
    avg_wait_time: int = 0


@dataclass(frozen=True)
class PgBouncerData:
    """Everything pgdoctor reads from one PgBouncer, plus (with --postgres-dsn) the server behind it."""

    version: str
    pools: list[PoolRow]
    databases: list[DatabaseRow]
    clients: list[ConnRow]
    servers: list[ConnRow]
    config: dict[str, str]
    stats: list[StatsRow]
    lists: dict[str, int]
    # pgdoctor's own console connection (address, port as PgBouncer sees it): left out of the clients
    own_addr: str | None = None
    own_port: int | None = None
    postgres: ConnectionsData | None = None
    postgres_error: str | None = None
    # SHOW CONFIG's `changeable` per key: False for the settings PgBouncer reads only when it starts
    # (listen_port, unix_socket_dir …; RELOAD leaves them alone); None in snapshots taken before it
    config_changeable: dict[str, bool] | None = None

    @property
    def major_minor(self) -> tuple[int, int]:
        m = re.search(r"(\d+)\.(\d+)", self.version)
        return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def from_columns(cls: type[T], names: Sequence[str], row: Sequence[Any]) -> T:
    """A row of the console as `cls`, by column name: unknown columns ignored, missing ones defaulted."""
    return rows_of(cls, names, [row])[0]


def rows_of(
    cls: type[T], names: Sequence[str], rows: Sequence[Sequence[Any]], now: float | None = None
) -> list[T]:
    """Rows of the console as `cls`, as `from_columns` reads one; which column goes to which field is
    worked out once per result, not per row (SHOW CLIENTS has a row per client: 1,000s). `now`: the
    rows are ConnRows, their ages computed from their time stamps (`age_of`) as they are built."""
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    where = {name: i for i, name in enumerate(names) if name in known}  # a repeated name: the last
    out: list[T] = []
    ages: dict[str | None, float | None] = {}  # time stamps repeat (whole seconds): each parsed once
    for row in rows:
        if len(row) < len(names):  # a short row: its own columns only (zip, not strict)
            values = {name: plain(value) for name, value in zip(names, row, strict=False) if name in known}
        else:
            values = {name: plain(row[i]) for name, i in where.items()}
        if len(values) < len(known):
            missing = [
                name
                for name, f in known.items()
                if name not in values
                and f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING
            ]
            if missing:
                raise PgDoctorError(
                    f"PgBouncer's {cls.__name__} lacks column(s) {', '.join(missing)}: not a PgBouncer "
                    "this pgdoctor knows",
                    ExitCode.QUERY_FAILED,
                )
        if now is not None:
            for stamp, age in (("connect_time", "connect_age_s"), ("request_time", "request_age_s")):
                text = values.get(stamp)
                if text not in ages:
                    ages[text] = age_of(text, now)
                values[age] = ages[text]
        out.append(cls(**values))
    return out


def plain(value: Any) -> Any:
    """Console values as plain JSON-able values (SHOW STATS sends numeric: Decimal -> int)."""
    if isinstance(value, Decimal):
        return int(value)
    return value


_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.\d+)?\s*(\S+)?$")


def age_of(stamp: str | None, now: float) -> float | None:
    """`2024-05-01 10:00:00 UTC` (PgBouncer's format) as seconds before `now`; None if unparsable."""
    if not stamp:
        return None
    m = _TIME.match(stamp.strip())
    if not m:
        return None
    try:  # the regex has checked the layout (fromisoformat: no _strptime import, 10x faster)
        moment = datetime.fromisoformat(m.group(1))
    except ValueError:  # a month 13
        return None
    zone = (m.group(2) or "").upper()
    if zone in ("UTC", "GMT", "Z", "+00", "+0000"):
        epoch = moment.replace(tzinfo=UTC).timestamp()
    else:  # a local zone name: PgBouncer runs on this host's clock, most often
        epoch = time.mktime(moment.timetuple())
    return max(round(now - epoch, 3), 0.0)


class Console:
    """A connection to PgBouncer's admin console that runs SHOW commands under a deadline."""

    def __init__(self, conn: psycopg.Connection[Any], timeout_s: float, conninfo: str) -> None:
        self.conn = conn
        self.timeout_s = timeout_s
        self.conninfo = conninfo

    def show(self, what: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Column names and rows of `SHOW <what>` (one of COMMANDS), sent with the simple query protocol."""
        import psycopg

        from pgdoctor.db import _Deadline

        if what not in COMMANDS:
            raise ValueError(f"pgdoctor sends only SHOW {'/'.join(COMMANDS)} to PgBouncer, not {what!r}")
        deadline = _Deadline(self.conn, self.timeout_s + DEADLINE_MARGIN_S)
        try:
            with deadline, psycopg.ClientCursor(self.conn) as cur:
                cur.execute(f"SHOW {what}")
                names = [d.name for d in cur.description or []]
                rows = list(cur.fetchall()) if cur.description else []
        except psycopg.Error as exc:
            if deadline.fired:
                raise PgDoctorError(
                    f"PgBouncer's admin console did not answer SHOW {what} within --timeout "
                    f"{self.timeout_s:g}s (+{DEADLINE_MARGIN_S:g}s); gave up",
                    ExitCode.QUERY_FAILED,
                ) from exc
            first = " ".join(str(exc).split()) or type(exc).__name__
            raise PgDoctorError(
                redact(f"PgBouncer's admin console refused SHOW {what}: {first}", self.conninfo),
                ExitCode.QUERY_FAILED,
            ) from exc
        return names, rows

    def rows(self, what: str, cls: type[T]) -> list[T]:
        names, rows = self.show(what)
        return rows_of(cls, names, rows)

    def conn_rows(self, what: str, now: float) -> list[ConnRow]:
        """SHOW CLIENTS or SERVERS, with the ages of their time stamps at `now` (`age_of`)."""
        names, rows = self.show(what)
        return rows_of(ConnRow, names, rows, now)


@contextmanager
def connect_console(dsn: str | None, timeout_s: float = 5.0) -> Iterator[Console]:
    """Open one connection to PgBouncer's admin console; every failure is one line (never a password)."""
    import psycopg

    from pgdoctor.db import connect_error

    conninfo = resolve_dsn(dsn)
    try:
        conn = psycopg.connect(
            conninfo,
            autocommit=True,
            # The console refuses any startup parameter it does not know (`options`: "unsupported
            # startup parameter") and any SET (an application_name: "SET failed"); empty values keep
            # $PGOPTIONS and $PGAPPNAME out of the startup packet.
            application_name="",
            options="",
            connect_timeout=max(math.ceil(timeout_s), 2),
            prepare_threshold=None,
        )
    except psycopg.Error as exc:
        raise console_connect_error(exc, conninfo, connect_error) from exc
    try:
        reported = conn.info.parameter_status("server_version") or ""
        if not reported.endswith("/bouncer"):
            where = f"database {conn.info.dbname!r}" if conn.info.dbname else "that database"
            raise PgDoctorError(
                f"not PgBouncer's admin console: {where} answered as a server (server_version "
                f"{reported or '?'}); point --dsn at PgBouncer's port and the database `pgbouncer`, "
                "e.g. postgresql://USER@HOST:6432/pgbouncer",
                ExitCode.USAGE,
            )
        yield Console(conn, timeout_s, conninfo)
    finally:
        conn.close()


def console_connect_error(exc: Exception, conninfo: str, fallback: Any) -> PgDoctorError:
    raw = " ".join(str(exc).split())
    low = raw.lower()
    if "not allowed" in low:
        return PgDoctorError(
            redact(
                "cannot read PgBouncer's admin console: the role is not in admin_users or stats_users "
                f"of pgbouncer.ini (PgBouncer said: {raw.split('FATAL:')[-1].strip()})",
                conninfo,
            ),
            ExitCode.PRIVILEGE,
        )
    if "no such database" in low:
        return PgDoctorError(
            redact(
                f"cannot connect: PgBouncer has no such database ({raw.split('FATAL:')[-1].strip()}); "
                "its admin console is the database `pgbouncer`",
                conninfo,
            ),
            ExitCode.CANNOT_CONNECT,
        )
    error: PgDoctorError = fallback(exc, conninfo)
    return error


def read_console(console: Console) -> PgBouncerData:
    """Every SHOW pgdoctor uses, typed."""
    from pgdoctor.db import local_endpoint

    names, rows = console.show("VERSION")
    version = str(rows[0][0]) if rows and rows[0] else "PgBouncer ?"
    pools = console.rows("POOLS", PoolRow)
    databases = console.rows("DATABASES", DatabaseRow)
    now = time.time()
    clients = console.conn_rows("CLIENTS", now)
    servers = console.conn_rows("SERVERS", now)
    names, rows = console.show("CONFIG")
    col = {n: i for i, n in enumerate(names)}
    config = {
        str(r[col["key"]]): "" if r[col["value"]] is None else str(r[col["value"]])
        for r in rows
        if "key" in col and "value" in col
    }
    changeable = (
        {str(r[col["key"]]): str(r[col["changeable"]]).lower() in ("yes", "1", "true") for r in rows}
        if "key" in col and "changeable" in col
        else None
    )
    stats = console.rows("STATS", StatsRow)
    names, rows = console.show("LISTS")
    lists = {str(r[0]): int(plain(r[1]) or 0) for r in rows if len(r) >= 2}
    own = local_endpoint(console.conn.pgconn.socket)
    return PgBouncerData(
        version=version,
        pools=pools,
        databases=databases,
        clients=clients,
        servers=servers,
        config=config,
        stats=stats,
        lists=lists,
        own_addr=own[0] if own else None,
        own_port=own[1] if own else None,
        config_changeable=changeable,
    )


def collect_pgbouncer(
    dsn: str | None, timeout_s: float, postgres: ConnectionsData | None = None
) -> PgBouncerData:
    """Read the console at `dsn`; `postgres` is the server side, when the caller collected it."""
    with connect_console(dsn, timeout_s) as console:
        data = read_console(console)
    return dataclasses.replace(data, postgres=postgres) if postgres is not None else data


def collect_postgres(dsn: str | None, timeout_s: float) -> ConnectionsData:
    """The PostgreSQL side (--postgres-dsn): its backends and the settings that bound them."""
    from pgdoctor.collect.connections import collect
    from pgdoctor.db import connect

    with connect(dsn, timeout_s) as db:
        return collect(db)


def collect(dsn: str | None, timeout_s: float, postgres_dsn: str | None = None) -> PgBouncerData:
    """The `pgbouncer` dataset (a snapshot stores it under that name)."""
    postgres = collect_postgres(postgres_dsn, timeout_s) if postgres_dsn else None
    return collect_pgbouncer(dsn, timeout_s, postgres)
