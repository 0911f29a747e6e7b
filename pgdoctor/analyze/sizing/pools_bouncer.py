"""The PgBouncer side of the pool plan: a transaction-mode pool sized for the CPUs (or for the measured
transactions), the applications behind it with NullPool."""

from __future__ import annotations

import math

from pgdoctor.analyze.findings import Finding, Severity
from pgdoctor.analyze.sizing.pool_types import (
    ADMIN_SLOTS,
    RESERVE_POOL_TIMEOUT_S,
    SERVER_IDLE_TIMEOUT_S,
    AppPool,
    AppSpec,
    PgBouncerPlan,
    PoolPlan,
    round_up,
)


def with_bouncer(
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
                "; assumes short transactions (milliseconds): `recommend -d DSN --sample 30s` sizes it "
                "for the measured ones"
                if server_needed is None
                else f"; {server_needed_basis}: it fits"
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
