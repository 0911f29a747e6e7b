"""PgBouncer's pools, clients and server connections, against the limits that bound them: the finding
rules, one function each, over the rows of pgdoctor.analyze.pgbouncer_rows. Pure functions.

Every threshold is defined once in pgdoctor.analyze.thresholds (PGB_*), whose comments cite PgBouncer's
documentation; the command's options default to the same constants.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pgdoctor.analyze import thresholds
from pgdoctor.analyze.findings import Finding, Severity, sort_findings
from pgdoctor.analyze.pgbouncer_rows import (
    ADMIN_DB,
    BOUNDING,
    ClientGroup,
    Pool,
    PostgresSide,
    Server,
    build_pool,
    build_servers,
    group_clients,
    int_or,
    is_own,
    postgres_side,
)

# After an edit of pgbouncer.ini, the admin console's RELOAD applies it (usage.html, "RELOAD: The
# PgBouncer process will reload its configuration files and update changeable settings"); advice prints
# it, pgdoctor never sends it.
RELOAD_ADVICE = "run RELOAD; on the admin console (pgdoctor never runs it)"
RELOAD = "RELOAD;"  # the action of a finding whose advice is an edit of pgbouncer.ini

if TYPE_CHECKING:
    from pgdoctor.collect.pgbouncer import DatabaseRow, PgBouncerData


@dataclass(frozen=True)
class PgBouncerReport:
    version: str
    pools: list[Pool]
    client_groups: list[ClientGroup]
    servers: list[Server]
    config: dict[str, str]
    clients_total: int
    max_client_conn: int
    postgres: PostgresSide | None
    postgres_error: str | None
    findings: list[Finding] = field(default_factory=list)


def _s(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 100 else f"{seconds:.0f} s"


# --- one function per finding rule -------------------------------------------------------------------


def find_clients_waiting(
    pool: Pool,
    query_wait_timeout_s: float,
    *,
    crit_pct: float = thresholds.PGB_WAIT_CRIT_PCT,
    crit_s: float = thresholds.PGB_WAIT_CRIT_S,
) -> list[Finding]:
    if pool.cl_waiting <= 0:
        return []
    limit = query_wait_timeout_s * crit_pct / 100 if query_wait_timeout_s > 0 else crit_s
    critical = pool.maxwait_s >= limit
    bound = (
        f"query_wait_timeout is {query_wait_timeout_s:g} s: clients waiting that long get an error"
        if query_wait_timeout_s > 0
        else "query_wait_timeout is 0: they wait forever"
    )
    return [
        Finding(
            Severity.CRITICAL if critical else Severity.WARNING,
            "clients_waiting",
            pool.name,
            f"{pool.cl_waiting} client(s) queued for a server connection, the longest for "
            f"{_s(pool.maxwait_s)}; {pool.sv_active} of {pool.pool_size} server connections busy "
            f"({pool.pool_mode} mode); {bound}",
            "see what holds the server connections (server_transactions_long, `pgdoctor connections` on "
            "PostgreSQL's port); shorten the transactions before raising pool_size",
        )
    ]


def find_pool_full(pool: Pool) -> list[Finding]:
    free = pool.sv_idle + pool.sv_used + pool.sv_tested
    if pool.sv_active == 0 or free > 0 or pool.sv_active < pool.pool_size:
        return []
    reserve = (
        f", the reserve ({pool.reserve_pool}) too"
        if pool.reserve_pool and pool.sv_active >= pool.pool_size + pool.reserve_pool
        else ""
    )
    return [
        Finding(
            Severity.WARNING,
            "pool_full",
            pool.name,
            f"every server connection of the pool is busy: {pool.sv_active} active of pool_size "
            f"{pool.pool_size}{reserve}, none idle; the next client queues",
            "",
        )
    ]


def find_server_transactions_long(
    pool: Pool, servers: list[Server], *, warn_s: float = thresholds.PGB_SERVER_XACT_WARN_S
) -> list[Finding]:
    mine = [s for s in servers if s.pool == pool.name]
    known = any(s.backend_state is not None for s in mine)
    if pool.pool_mode == "session" and not known:
        return []  # a session-mode server stays linked to its client between transactions
    long = [s for s in mine if (h := s.held_s) is not None and h >= warn_s]
    if not long:
        return []
    idle = [s for s in long if (s.backend_state or "").startswith("idle in transaction")]
    longest = max(s.held_s or 0.0 for s in long)
    full = len(long) >= pool.pool_size
    what = (
        "transactions open" if known else "transactions (lower bound: time since the server's last request)"
    )
    msg = (
        f"{len(long)} of {len(mine)} server connections held by {what} for {_s(warn_s)} or more "
        f"(longest {_s(longest)})"
    )
    if known:
        msg += f"; {len(idle)} of them idle in transaction (the application works inside the transaction)"
    if pool.cl_waiting:
        msg += f"; {pool.cl_waiting} client(s) wait for them"
    pids = tuple(s.remote_pid for s in long if s.remote_pid is not None)
    if pool.pool_mode == "transaction" and (idle or not known):
        advice = (
            f"the fix is in the application, not a bigger pool: each transaction holds one of the "
            f"{pool.pool_size} server connections for up to {_s(longest)}"
            + (f", {len(idle)} of them doing nothing on the server" if idle else "")
            + "; commit before slow work (HTTP calls, file I/O) and keep transactions short. A bigger "
            "pool only moves the queue into PostgreSQL; idle_transaction_timeout (PgBouncer) or "
            "idle_in_transaction_session_timeout (PostgreSQL) bound it"
        )
    else:
        advice = (
            "long transactions keep server connections from other clients; shorten them (or their "
            "statements) before raising pool_size"
        )
    if not known:
        advice += "; with --postgres-dsn pgdoctor reads the backends' real transaction ages and states"
    return [
        Finding(
            Severity.CRITICAL if full and pool.cl_waiting else Severity.WARNING,
            "server_transactions_long",
            pool.name,
            msg,
            advice,
            pids,
        )
    ]


def find_client_limit(
    clients: int,
    max_client_conn: int,
    *,
    warn_pct: float = thresholds.PGB_CLIENT_WARN_PCT,
    crit_pct: float = thresholds.PGB_CLIENT_CRIT_PCT,
) -> list[Finding]:
    if max_client_conn <= 0:
        return []
    pct = 100.0 * clients / max_client_conn
    if pct < warn_pct:
        return []
    return [
        Finding(
            Severity.CRITICAL if pct >= crit_pct else Severity.WARNING,
            "client_limit",
            "pgbouncer",
            f"{clients} client connections of max_client_conn {max_client_conn} ({pct:.0f}%); past it "
            "PgBouncer refuses new clients (no more connections allowed)",
            "raise max_client_conn in pgbouncer.ini (it costs PgBouncer little memory, not PostgreSQL "
            f"slots), then {RELOAD_ADVICE}; or cap the applications' pools (`pgdoctor recommend`)",
            action=RELOAD,
        )
    ]


def server_side_total(pools: list[Pool], max_user_connections: int) -> tuple[int, dict[str, int]]:
    """What PgBouncer may open to PostgreSQL: per database the sum of its pools' size + reserve (each
    user's share capped by max_user_connections), capped by the database's max_db_connections."""
    per_db: dict[str, int] = {}
    caps: dict[str, int] = {}
    for p in pools:
        n = p.pool_size + p.reserve_pool
        if max_user_connections > 0:
            n = min(n, max_user_connections)
        per_db[p.database] = per_db.get(p.database, 0) + n
        caps[p.database] = p.max_db_connections
    for db, cap in caps.items():
        if cap > 0:
            per_db[db] = min(per_db[db], cap)
    return sum(per_db.values()), per_db


def find_exceeds_postgres(
    pools: list[Pool], postgres: PostgresSide | None, max_user_connections: int
) -> list[Finding]:
    if postgres is None or not pools:
        return []
    total, per_db = server_side_total(pools, max_user_connections)
    if total <= postgres.usable:
        return []
    parts = ", ".join(f"{db} {n}" for db, n in sorted(per_db.items()))
    return [
        Finding(
            Severity.WARNING,
            "exceeds_postgres",
            "pgbouncer",
            f"PgBouncer's pools may open {total} server connections ({parts}: pool size + reserve) but "
            f"PostgreSQL has {postgres.usable} usable slots (max_connections {postgres.max_connections} "
            "minus the reserved ones); at full load clients get `remaining connection slots are reserved` "
            "instead of queueing in PgBouncer",
            "lower default_pool_size / reserve_pool_size, or cap with max_db_connections / "
            "max_user_connections so the pools fit the server (`pgdoctor recommend --pgbouncer-dsn` "
            f"compares them), in pgbouncer.ini, then {RELOAD_ADVICE}",
            action=RELOAD,
        )
    ]


def find_reserve_in_use(pool: Pool) -> list[Finding]:
    if pool.servers <= pool.pool_size or pool.reserve_pool <= 0:
        return []
    return [
        Finding(
            Severity.WARNING,
            "reserve_in_use",
            pool.name,
            f"{pool.servers - pool.pool_size} reserve server connection(s) in use ({pool.servers} open, "
            f"pool_size {pool.pool_size}, reserve_pool {pool.reserve_pool}): clients waited longer than "
            "reserve_pool_timeout",
            "the pool is too small for its load, or transactions hold it too long",
        )
    ]


def console_name(name: str) -> str:
    """A database name as the admin console's commands take it: a plain lower-case word as is, anything
    else double-quoted with inner quotes doubled (admin.c's WORD: `"([^"]+|"")*"|[0-9a-z_]+`).

    >>> console_name("app_db"), console_name("App-DB"), console_name('a"b')
    ('app_db', '"App-DB"', '"a""b"')
    """
    if re.fullmatch(r"[0-9a-z_]+", name):
        return name
    return '"' + name.replace('"', '""') + '"'


def find_paused_disabled(dbs: list[DatabaseRow]) -> list[Finding]:
    out = []
    for d in dbs:
        if d.name == ADMIN_DB:
            continue
        if d.paused:
            out.append(
                Finding(
                    Severity.CRITICAL,
                    "paused",
                    d.name,
                    "the database is PAUSEd in PgBouncer: its clients wait and get no server connection",
                    "once the reason is gone, an administrator resumes it on the admin console (pgdoctor "
                    "prints the command, never runs it)",
                    action=f"RESUME {console_name(d.name)};",
                )
            )
        if d.disabled:
            out.append(
                Finding(
                    Severity.WARNING,
                    "disabled",
                    d.name,
                    "the database is DISABLEd in PgBouncer: new clients are refused",
                    "enable it on the admin console when intended (pgdoctor prints the command, never "
                    "runs it)",
                    action=f"ENABLE {console_name(d.name)};",
                )
            )
    return out


def find_session_mode_many_clients(
    pool: Pool, *, per_slot: float = thresholds.PGB_SESSION_CLIENTS_PER_SLOT
) -> list[Finding]:
    clients = pool.cl_active + pool.cl_waiting
    if pool.pool_mode != "session" or clients <= pool.pool_size * per_slot:
        return []
    return [
        Finding(
            Severity.WARNING,
            "session_mode_many_clients",
            pool.name,
            f"{clients} clients on a session-mode pool of {pool.pool_size}: session pooling gives no "
            "multiplexing, each client holds its server connection until it disconnects",
            "use pool_mode = transaction if the application keeps no session state (prepared statements "
            "before PgBouncer 1.21, SET, advisory locks, LISTEN, temp tables): set it in pgbouncer.ini, "
            f"then {RELOAD_ADVICE}",
            action=RELOAD,
        )
    ]


def analyze(
    data: PgBouncerData,
    *,
    wait_crit_pct: float = thresholds.PGB_WAIT_CRIT_PCT,
    wait_crit_s: float = thresholds.PGB_WAIT_CRIT_S,
    server_xact_warn_s: float = thresholds.PGB_SERVER_XACT_WARN_S,
    client_warn_pct: float = thresholds.PGB_CLIENT_WARN_PCT,
    client_crit_pct: float = thresholds.PGB_CLIENT_CRIT_PCT,
) -> PgBouncerReport:
    config = data.config
    dbs = {d.name: d for d in data.databases}
    pools = [build_pool(p, dbs.get(p.database), config) for p in data.pools if p.database != ADMIN_DB]
    clients = [c for c in data.clients if not is_own(c, data)]
    servers = build_servers(data)
    postgres = postgres_side(data)
    max_client_conn = int_or(config.get("max_client_conn"), 100)
    query_wait_timeout = float(int_or(config.get("query_wait_timeout"), 120))
    findings: list[Finding] = []
    for p in pools:
        findings += find_clients_waiting(p, query_wait_timeout, crit_pct=wait_crit_pct, crit_s=wait_crit_s)
        findings += find_pool_full(p)
        findings += find_server_transactions_long(p, servers, warn_s=server_xact_warn_s)
        findings += find_reserve_in_use(p)
        findings += find_session_mode_many_clients(p)
    findings += find_client_limit(
        len(clients), max_client_conn, warn_pct=client_warn_pct, crit_pct=client_crit_pct
    )
    findings += find_exceeds_postgres(pools, postgres, int_or(config.get("max_user_connections")))
    findings += find_paused_disabled(data.databases)
    return PgBouncerReport(
        version=data.version,
        pools=pools,
        client_groups=group_clients(c for c in clients if c.database != ADMIN_DB),
        servers=servers,
        config={k: config[k] for k in BOUNDING if k in config},
        clients_total=len(clients),
        max_client_conn=max_client_conn,
        postgres=postgres,
        postgres_error=data.postgres_error,
        findings=sort_findings(findings),
    )
