"""PgBouncer's SHOW rows turned into the report's rows: pools with their sizes, clients grouped, server
connections with the client they serve and the backend behind them. Pure functions; the finding rules
over these rows are pgdoctor.analyze.pgbouncer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pgdoctor.analyze.connections import ViaPgBouncer
    from pgdoctor.collect.pgbouncer import ConnRow, DatabaseRow, PgBouncerData, PoolRow

# The settings of SHOW CONFIG that bound the pools, in the report and the JSON.
BOUNDING = (
    "max_client_conn",
    "default_pool_size",
    "reserve_pool_size",
    "reserve_pool_timeout",
    "max_db_connections",
    "max_user_connections",
    "query_wait_timeout",
    "server_idle_timeout",
    "idle_transaction_timeout",
    "pool_mode",
)
ADMIN_DB = "pgbouncer"


@dataclass(frozen=True)
class Pool:
    database: str
    user: str
    pool_mode: str
    cl_active: int
    cl_waiting: int
    sv_active: int
    sv_idle: int
    sv_used: int
    sv_tested: int
    sv_login: int
    maxwait_s: float
    pool_size: int
    reserve_pool: int
    max_db_connections: int  # of the pool's database; 0 = unlimited
    paused: bool
    disabled: bool

    @property
    def name(self) -> str:
        return f"{self.database}/{self.user}"

    @property
    def servers(self) -> int:
        return self.sv_active + self.sv_idle + self.sv_used + self.sv_tested + self.sv_login


@dataclass(frozen=True)
class ClientGroup:
    """Clients with one application_name from one address."""

    application_name: str
    addr: str
    total: int
    active: int
    waiting: int
    other: int
    pools: tuple[str, ...]
    longest_wait_s: float


@dataclass(frozen=True)
class Server:
    """A server connection of PgBouncer, the client it serves now, and (with --postgres-dsn) its backend."""

    pool: str
    state: str
    remote_pid: int | None
    connect_age_s: float | None
    request_age_s: float | None
    client_addr: str | None
    client_port: int | None
    client_application_name: str | None
    backend_state: str | None = None
    xact_age_s: float | None = None

    @property
    def held_s(self) -> float | None:
        """How long its current transaction has held it: the backend's transaction age when known, else
        (an active server) at least the time since its last request."""
        if self.state != "active":
            return None
        if self.xact_age_s is not None:
            return self.xact_age_s
        if self.backend_state is not None:  # the backend is known and is in no transaction
            return None
        return self.request_age_s


@dataclass(frozen=True)
class PostgresSide:
    version: str
    usable: int
    clients: int
    max_connections: int


def int_or(text: str | None, default: int = 0) -> int:
    """A whole number PgBouncer shows as text (SHOW CONFIG's values), else `default`."""
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return default


def build_pool(row: PoolRow, db: DatabaseRow | None, config: dict[str, str]) -> Pool:
    mode = row.pool_mode or (db.pool_mode if db else None) or config.get("pool_mode", "session")
    size = db.pool_size if db is not None and db.pool_size is not None and db.pool_size >= 0 else None
    reserve = db.reserve_pool if db is not None and db.reserve_pool is not None else None
    return Pool(
        database=row.database,
        user=row.user,
        pool_mode=mode,
        cl_active=row.cl_active,
        cl_waiting=row.cl_waiting,
        sv_active=row.sv_active,
        sv_idle=row.sv_idle,
        sv_used=row.sv_used,
        sv_tested=row.sv_tested,
        sv_login=row.sv_login,
        maxwait_s=round(row.maxwait_s, 3),
        pool_size=size if size is not None else int_or(config.get("default_pool_size"), 20),
        reserve_pool=reserve if reserve is not None else int_or(config.get("reserve_pool_size")),
        max_db_connections=db.max_connections if db is not None else int_or(config.get("max_db_connections")),
        paused=bool(db.paused) if db is not None else False,
        disabled=bool(db.disabled) if db is not None else False,
    )


def is_own(c: ConnRow, data: PgBouncerData) -> bool:
    return c.database == ADMIN_DB and c.port == data.own_port and c.addr == data.own_addr


def group_clients(clients: Iterable[ConnRow]) -> list[ClientGroup]:
    groups: dict[tuple[str, str], list[ConnRow]] = {}
    for c in clients:
        key = (c.application_name or "", c.addr or "unix")
        groups.setdefault(key, []).append(c)
    out = [
        ClientGroup(
            application_name=app,
            addr=addr,
            total=len(members),
            active=sum(1 for c in members if c.state == "active"),
            waiting=sum(1 for c in members if c.state.startswith("waiting")),
            other=sum(1 for c in members if c.state != "active" and not c.state.startswith("waiting")),
            pools=tuple(sorted({f"{c.database}/{c.user}" for c in members})),
            longest_wait_s=round(
                max((c.wait_s for c in members if c.state.startswith("waiting")), default=0.0), 3
            ),
        )
        for (app, addr), members in groups.items()
    ]
    return sorted(out, key=lambda g: (-g.total, g.application_name, g.addr))


def build_servers(data: PgBouncerData) -> list[Server]:
    clients = {c.ptr: c for c in data.clients}
    backends = {a.pid: a for a in data.postgres.activity} if data.postgres is not None else {}
    out = []
    for s in data.servers:
        client = clients.get(s.link or "") if s.link else None
        backend = backends.get(s.remote_pid) if s.remote_pid is not None else None
        out.append(
            Server(
                pool=f"{s.database}/{s.user}",
                state=s.state,
                remote_pid=s.remote_pid,
                connect_age_s=s.connect_age_s,
                request_age_s=s.request_age_s,
                client_addr=client.addr if client else None,
                client_port=client.port if client else None,
                client_application_name=client.application_name if client else None,
                backend_state=(backend.state or "") if backend is not None else None,
                xact_age_s=backend.xact_age_s if backend is not None else None,
            )
        )
    return out


def postgres_side(data: PgBouncerData) -> PostgresSide | None:
    if data.postgres is None:
        return None
    from pgdoctor.analyze.common import CLIENT_BACKEND
    from pgdoctor.analyze.connections import backend_type_of, capacity_of

    server = data.postgres.server
    clients = sum(1 for a in data.postgres.activity if backend_type_of(a) == CLIENT_BACKEND)
    cap = capacity_of(server, clients)
    return PostgresSide(
        version=server.version, usable=cap.usable, clients=clients, max_connections=cap.max_connections
    )


def via_map(data: PgBouncerData) -> dict[int, ViaPgBouncer]:
    """PostgreSQL backend pid -> the PgBouncer client its server connection serves now (SHOW SERVERS
    remote_pid, link -> SHOW CLIENTS ptr); idle server connections map to their pool alone."""
    from pgdoctor.analyze.connections import ViaPgBouncer

    clients = {c.ptr: c for c in data.clients}
    out = {}
    for s in data.servers:
        if s.remote_pid is None or s.remote_pid <= 0:
            continue
        client = clients.get(s.link) if s.link else None
        out[s.remote_pid] = ViaPgBouncer(
            pool=f"{s.database}/{s.user}",
            client_addr=(client.addr or "unix") if client else None,
            client_port=client.port if client else None,
            application_name=client.application_name if client else None,
        )
    return out
