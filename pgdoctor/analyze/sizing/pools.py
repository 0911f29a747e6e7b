"""Pool arithmetic across the three layers: application pools -> PgBouncer -> PostgreSQL.

The server pool is sized for the machine, not for the clients: a server runs about
`cores * 2 + effective_spindle_count` queries at once to good effect (the PostgreSQL wiki's "Number Of
Database Connections"); more connections queue inside the server instead of in a pooler. PgBouncer
(transaction mode) turns many client connections into that many server connections; without it every
application connection is a server backend, so the applications' pools must fit the usable slots.

Invariants (tests/test_recommend_pools.py checks them with hypothesis over random topologies):
- with PgBouncer: sum(processes * connections per process) <= max_client_conn, and
  databases * max_db_connections <= usable server slots, default_pool_size + reserve_pool_size <=
  max_db_connections, and default_pool_size depends on the CPUs and storage only, unless a sample
  measured more server connections busy (`server_needed`): then it is at least that, where it fits;
- without PgBouncer (when it fits): sum(processes * (pool_size + max_overflow)) <= usable slots;
- every process's pool holds at least its threads (or async tasks): pool_size (NullPool: one connection
  per thread) >= threads, so a pool is never below the concurrency given or seen;
- usable = max_connections - superuser_reserved_connections - reserved_connections.
"""

from __future__ import annotations

from pgdoctor.analyze.findings import Finding, Severity
from pgdoctor.analyze.sizing.pool_types import (
    ADMIN_SLOTS,
    ASSUMED_CPUS,
    DIRECT_FACTOR,
    MAX_OVERFLOW_CAP,
    PGBOUNCER_KEYS,
    POOL_RECYCLE_S,
    POOL_TIMEOUT_S,
    RESERVE_POOL_TIMEOUT_S,
    SERVER_IDLE_TIMEOUT_S,
    SPINDLES,
    AppPool,
    AppSpec,
    PgBouncerPlan,
    PoolPlan,
    pgbouncer_values,
    round_up,
)
from pgdoctor.analyze.sizing.pools_bouncer import with_bouncer
from pgdoctor.analyze.sizing.settings import DEFAULT_SUPERUSER_RESERVED, PGTUNE_MAX_CONNECTIONS

__all__ = [  # the plan's types, where its users have always imported them from
    "ADMIN_SLOTS",
    "ASSUMED_CPUS",
    "DIRECT_FACTOR",
    "MAX_OVERFLOW_CAP",
    "PGBOUNCER_KEYS",
    "POOL_RECYCLE_S",
    "POOL_TIMEOUT_S",
    "RESERVE_POOL_TIMEOUT_S",
    "SERVER_IDLE_TIMEOUT_S",
    "SPINDLES",
    "AppPool",
    "AppSpec",
    "PgBouncerPlan",
    "PoolPlan",
    "cpu_pool",
    "pgbouncer_values",
    "plan",
]


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
        return with_bouncer(
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
