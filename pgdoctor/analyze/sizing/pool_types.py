"""The pool plan's types and constants (`pools.plan` computes it, `pools_bouncer` its PgBouncer side)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pgdoctor.analyze.findings import Finding

# effective_spindle_count per storage kind: disks that can seek at the same time; flash does not seek.
SPINDLES = {"hdd": 2, "san": 2, "ssd": 0, "nvme": 0}
ASSUMED_CPUS = 4  # when --cpus is not given: said in the output
# Without PgBouncer, application connections over this many times the CPU-sized pool queue inside
# PostgreSQL, each an OS process with its own memory ("Connections and Authentication", max_connections)
DIRECT_FACTOR = 4
ADMIN_SLOTS = 10  # direct connections besides PgBouncer: migrations, cron jobs, monitoring, psql
MAX_OVERFLOW_CAP = 10  # SQLAlchemy's default max_overflow
POOL_TIMEOUT_S = 30
POOL_RECYCLE_S = 1800
SERVER_IDLE_TIMEOUT_S = 600
RESERVE_POOL_TIMEOUT_S = 5


@dataclass(frozen=True)
class AppSpec:
    """An application: how many OS processes keep a pool of their own, and how many threads in each use
    the database at the same time."""

    name: str
    processes: int
    threads: int = 1
    observed: bool = False  # read from pg_stat_activity or a sample (recommend's demand), not given
    kind: str = "threads"  # "threads", or "async": `threads` is then the tasks using the database at once

    @property
    def unit(self) -> str:
        return "task(s)" if self.kind == "async" else "thread(s)"


@dataclass(frozen=True)
class AppPool:
    name: str
    processes: int
    threads: int
    poolclass: str  # "QueuePool" or "NullPool"
    pool_size: int | None  # None for NullPool (create_engine takes no pool_size then)
    max_overflow: int | None
    pool_timeout: int | None
    pool_recycle: int | None
    pool_pre_ping: bool
    per_process: int  # most connections one process opens: pool_size + max_overflow, or threads (NullPool)
    total: int  # processes * per_process
    observed: bool
    reason: str
    kind: str = "threads"  # as AppSpec.kind: async applications get create_async_engine


@dataclass(frozen=True)
class PgBouncerPlan:
    pool_mode: str
    default_pool_size: int
    reserve_pool_size: int
    reserve_pool_timeout: int
    max_client_conn: int
    max_db_connections: int
    server_idle_timeout: int
    databases: int
    server_total: int  # databases * max_db_connections: server connections PgBouncer may open
    reasons: dict[str, str]


# the keys of the [pgbouncer] block, in its order (what `recommend --pgbouncer-dsn` compares)
PGBOUNCER_KEYS = (
    "pool_mode",
    "default_pool_size",
    "reserve_pool_size",
    "reserve_pool_timeout",
    "max_client_conn",
    "max_db_connections",
    "server_idle_timeout",
)


def pgbouncer_values(plan: PgBouncerPlan) -> dict[str, str]:
    """The plan's [pgbouncer] keys as pgbouncer.ini takes them."""
    return {name: str(getattr(plan, name)) for name in PGBOUNCER_KEYS}


@dataclass(frozen=True)
class PoolPlan:
    cpus: int
    cpus_assumed: bool
    spindles: int
    cpu_pool: int  # cores * 2 + spindles
    max_connections: int
    max_connections_reason: str
    superuser_reserved: int
    reserved_connections: int
    usable: int  # the server connection budget: slots ordinary roles may use
    work_mem_connections: int  # connections that can run queries at once: what work_mem is divided by
    work_mem_basis: str
    pgbouncer: PgBouncerPlan | None
    pgbouncer_reason: str
    apps: list[AppPool]
    client_total: int  # sum over apps of processes * per_process
    fits: bool
    findings: list[Finding] = field(default_factory=list)


def round_up(n: int, step: int = 10) -> int:
    return int(math.ceil(n / step) * step)
