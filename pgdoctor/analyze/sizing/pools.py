"""Pool arithmetic across the three layers: application pools -> PgBouncer -> PostgreSQL.

The server pool is sized for the machine, not for the clients: a server runs about
`cores * 2 + effective_spindle_count` queries at once to good effect (the PostgreSQL wiki's "Number Of
Database Connections"); more connections queue inside the server instead of in a pooler. PgBouncer
(transaction mode) turns many client connections into that many server connections; without it every
application connection is a server backend, so the applications' pools must fit the usable slots.

Invariants (tests/test_recommend_pools.py checks them with hypothesis over random topologies):
- with PgBouncer: sum(processes * connections per process) <= max_client_conn, and
  databases * max_db_connections <= usable server slots, default_pool_size + reserve_pool_size <=
  max_db_connections, and default_pool_size depends on the CPUs and storage only;
- without PgBouncer (when it fits): sum(processes * (pool_size + max_overflow)) <= usable slots;
- usable = max_connections - superuser_reserved_connections - reserved_connections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pgdoctor.analyze.findings import Finding, Severity
from pgdoctor.analyze.sizing.settings import DEFAULT_SUPERUSER_RESERVED, PGTUNE_MAX_CONNECTIONS

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


def cpu_pool(cpus: int, storage: str) -> int:
    return cpus * 2 + SPINDLES[storage]


def plan(
    apps: list[AppSpec],
    *,
    cpus: int | None,
    storage: str = "ssd",
    workload: str = "web",
    max_connections: int | None = None,
    pgbouncer: bool | None = None,
    databases: int = 1,
    superuser_reserved: int = DEFAULT_SUPERUSER_RESERVED,
    reserved_connections: int = 0,
    server_needed: int | None = None,
    server_needed_basis: str = "",
) -> PoolPlan:
    """Size PgBouncer and every application's pool so that the layers fit together. `server_needed`: the
    server connections a sample measured busy in transactions (with headroom; `server_needed_basis` says
    how): PgBouncer's pool is then at least that, not only the CPU-sized pool."""
    findings: list[Finding] = []
    cores = cpus or ASSUMED_CPUS
    spindles = SPINDLES[storage]
    target = cpu_pool(cores, storage)
    reserved = superuser_reserved + reserved_connections
    demand = sum(a.processes * a.threads for a in apps)
    processes = sum(a.processes for a in apps)
    default_max = max_connections or PGTUNE_MAX_CONNECTIONS[workload]
    direct_usable = default_max - reserved
    if pgbouncer is None:
        use_bouncer = bool(apps) and demand > direct_usable
        bouncer_reason = (
            f"PgBouncer advised: the applications' {demand} connections needed at once do not fit the "
            f"{direct_usable} usable slots even of a direct max_connections={default_max}; it multiplexes "
            f"them onto {target} server connections, so max_connections is sized for those instead"
            if use_bouncer
            else (
                f"no PgBouncer needed: the applications' {demand} connections fit the {direct_usable} "
                "usable slots"
                if apps
                else "no applications given (--app): no PgBouncer sized"
            )
        )
    else:
        use_bouncer = pgbouncer
        bouncer_reason = (
            "PgBouncer as asked (--pgbouncer)" if pgbouncer else "no PgBouncer, as asked (--no-pgbouncer)"
        )
    if cpus is None and (apps or use_bouncer):
        findings.append(
            Finding(
                Severity.INFO,
                "cpus_assumed",
                "inputs",
                f"--cpus not given: pools are sized for {ASSUMED_CPUS} CPUs",
                "give --cpus N (the database server's cores) for pools sized to the machine",
            )
        )

    if use_bouncer:
        return _with_bouncer(
            apps, cores, cpus is None, spindles, target, max_connections, databases, superuser_reserved,
            reserved_connections, bouncer_reason, findings, server_needed, server_needed_basis,
        )  # fmt: skip

    # Without PgBouncer every application connection is a server backend.
    if max_connections is not None:
        max_conn = max_connections
        mc_reason = "as given (--max-connections)"
    elif demand > direct_usable:  # --no-pgbouncer and the pgtune default is too small: raise it
        max_conn = round_up(demand + ADMIN_SLOTS + reserved)
        mc_reason = (
            f"the applications' {demand} connections needed at once + {ADMIN_SLOTS} for administration + "
            f"{reserved} reserved, without PgBouncer (pgtune would say {default_max})"
        )
    else:
        max_conn = default_max
        mc_reason = f"pgtune's default for a {workload} workload"
    usable = max(max_conn - reserved, 0)
    spare = usable - demand
    fits = spare >= 0
    overflow = min(MAX_OVERFLOW_CAP, spare // processes) if fits and processes else 0
    pools: list[AppPool] = []
    for a in apps:
        o = min(overflow, a.threads)
        per = a.threads + o
        pool_word = "task(s) at once" if a.kind == "async" else "thread(s)"
        pools.append(
            AppPool(
                name=a.name,
                processes=a.processes,
                threads=a.threads,
                poolclass="QueuePool",
                pool_size=a.threads,
                max_overflow=o,
                pool_timeout=POOL_TIMEOUT_S,
                pool_recycle=POOL_RECYCLE_S,
                pool_pre_ping=True,
                per_process=per,
                total=a.processes * per,
                observed=a.observed,
                kind=a.kind,
                reason=(
                    f"direct to PostgreSQL: pool_size = {a.threads} {pool_word} per process, "
                    f"max_overflow {o} "
                    f"for bursts; {a.processes} x {per} = {a.processes * per} of {usable} usable slots"
                ),
            )
        )
    client_total = sum(p.total for p in pools)
    if apps and fits:
        said = (
            f"the applications need {demand} connections at once; their pools open at most {client_total} "
            f"(with max_overflow), within the {usable} usable slots"
        )
        mc_reason += f"; {said}"
        if pgbouncer is None:
            bouncer_reason = f"no PgBouncer needed: {said}"
    if not fits:
        findings.append(
            Finding(
                Severity.CRITICAL,
                "pools_exceed_server",
                "server",
                f"the applications need {demand} connections at once but max_connections={max_conn} leaves "
                f"{usable} usable slots: clients will fail with 'too many clients already'",
                "put PgBouncer in front (drop --no-pgbouncer) or raise --max-connections",
            )
        )
    elif apps and demand > DIRECT_FACTOR * target:
        findings.append(
            Finding(
                Severity.INFO,
                "direct_connections",
                "server",
                f"{demand} application connections go straight to a server whose {cores} CPUs run about "
                f"{target} queries at once: the rest queue inside PostgreSQL, each backend holding memory",
                "PgBouncer in transaction mode (--pgbouncer) keeps the server side at the CPU-sized pool",
            )
        )
    return PoolPlan(
        cpus=cores,
        cpus_assumed=cpus is None,
        spindles=spindles,
        cpu_pool=target,
        max_connections=max_conn,
        max_connections_reason=mc_reason,
        superuser_reserved=superuser_reserved,
        reserved_connections=reserved_connections,
        usable=usable,
        work_mem_connections=max_conn,
        work_mem_basis=f"max_connections={max_conn}",
        pgbouncer=None,
        pgbouncer_reason=bouncer_reason,
        apps=pools,
        client_total=client_total,
        fits=fits,
        findings=findings,
    )


def _with_bouncer(
    apps: list[AppSpec],
    cores: int,
    cpus_assumed: bool,
    spindles: int,
    target: int,
    max_connections: int | None,
    databases: int,
    superuser_reserved: int,
    reserved_connections: int,
    bouncer_reason: str,
    findings: list[Finding],
    server_needed: int | None = None,
    server_needed_basis: str = "",
) -> PoolPlan:
    reserved = superuser_reserved + reserved_connections
    wanted = max(target, server_needed or 0)  # transactions that last hold their server connection
    pool_size = wanted
    reserve = max(1, math.ceil(target / 4))
    fits = True
    if max_connections is not None:
        max_conn = max_connections
        mc_reason = "as given (--max-connections)"
        usable = max(max_conn - reserved, 0)
        per_db_max = usable // databases
        if pool_size + reserve > per_db_max:
            # Squeeze the pools into the slots there are; the CPU-sized pool is the ceiling, not the floor.
            if per_db_max < 1:
                fits = False
                pool_size, reserve = 1, 0
            else:
                pool_size = min(wanted, per_db_max - per_db_max // 5)
                reserve = min(reserve, per_db_max - pool_size)
    else:
        server_total = databases * (pool_size + reserve)
        max_conn = round_up(server_total + ADMIN_SLOTS + reserved)
        mc_reason = (
            f"PgBouncer's {server_total} server connections ({databases} database(s) x max_db_connections "
            f"{pool_size + reserve}) + {ADMIN_SLOTS} for administration + {reserved} reserved, rounded up; "
            + (
                "sized for the CPUs, not for the client count"
                if wanted == target
                else "sized for the measured transactions, not for the client count"
            )
        )
        usable = max_conn - reserved
    per_db = pool_size + reserve
    server_total = databases * per_db
    pools = [
        AppPool(
            name=a.name,
            processes=a.processes,
            threads=a.threads,
            poolclass="NullPool",
            kind=a.kind,
            pool_size=None,
            max_overflow=None,
            pool_timeout=None,
            pool_recycle=None,
            pool_pre_ping=False,
            per_process=a.threads,
            total=a.processes * a.threads,
            observed=a.observed,
            reason=(
                f"behind PgBouncer in transaction mode: NullPool, no second pool in the process; each of "
                f"the {a.processes} process(es) opens at most {a.threads} PgBouncer connection(s) at once, "
                "one per "
                f"{a.unit.replace('(s)', '')} using the database"
            ),
        )
        for a in apps
    ]
    client_total = sum(p.total for p in pools)
    max_client = max(100, client_total + max(ADMIN_SLOTS, math.ceil(client_total / 10)))
    work_conns = min(max_conn, server_total + ADMIN_SLOTS + reserved)
    bouncer = PgBouncerPlan(
        pool_mode="transaction",
        default_pool_size=pool_size,
        reserve_pool_size=reserve,
        reserve_pool_timeout=RESERVE_POOL_TIMEOUT_S,
        max_client_conn=max_client,
        max_db_connections=per_db,
        server_idle_timeout=SERVER_IDLE_TIMEOUT_S,
        databases=databases,
        server_total=server_total,
        reasons={
            "pool_mode": "a server connection is held only for a transaction; session state (SET, advisory "
            "locks, LISTEN, WITH HOLD cursors) does not survive; prepared statements need PgBouncer 1.21+ "
            "max_prepared_statements",
            "default_pool_size": f"{cores} CPUs x 2 + {spindles} spindle(s) = {target}: what the server runs "
            "well at once, whatever the number of clients"
            + (
                ""
                if wanted == target
                else f"; raised to {wanted}: {server_needed_basis} (a transaction-mode server connection is "
                "held for the whole transaction, its idle time included)"
            )
            + ("" if pool_size == wanted else f"; squeezed to {pool_size} to fit max_connections"),
            "reserve_pool_size": "extra server connections when clients have waited reserve_pool_timeout",
            "reserve_pool_timeout": "seconds a client waits before the reserve pool is used",
            "max_client_conn": f"the applications' {client_total} connections + headroom (at least 100); "
            f"needs ulimit -n above {max_client + server_total}",
            "max_db_connections": f"caps each database at default_pool_size + reserve_pool_size = {per_db}; "
            f"{databases} database(s) x {per_db} = {server_total} of {usable} usable server slots",
            "server_idle_timeout": "close server connections idle this many seconds; the pool refills "
            "on demand",
        },
    )
    if not fits:
        findings.append(
            Finding(
                Severity.CRITICAL,
                "pools_exceed_server",
                "server",
                f"max_connections={max_conn} leaves {usable} usable slots: not one per database for "
                "PgBouncer",
                "raise --max-connections",
            )
        )
    return PoolPlan(
        cpus=cores,
        cpus_assumed=cpus_assumed,
        spindles=spindles,
        cpu_pool=target,
        max_connections=max_conn,
        max_connections_reason=mc_reason,
        superuser_reserved=superuser_reserved,
        reserved_connections=reserved_connections,
        usable=usable,
        work_mem_connections=work_conns,
        work_mem_basis=(
            f"PgBouncer's {server_total} server connections + {ADMIN_SLOTS} administration + {reserved} "
            "reserved"
            if work_conns < max_conn
            else f"max_connections={max_conn}"
        ),
        pgbouncer=bouncer,
        pgbouncer_reason=bouncer_reason,
        apps=pools,
        client_total=client_total,
        fits=fits,
        findings=findings,
    )
