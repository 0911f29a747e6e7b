"""`recommend --pgbouncer-dsn`: the [pgbouncer] plan against the running PgBouncer. Pure functions.

The running configuration is PgBouncer's own account of it: `SHOW CONFIG` (value and `changeable`: a
setting that is not changeable is read only when PgBouncer starts, so applying it needs a restart; every
other one takes effect on the admin console's `RELOAD`) and `SHOW DATABASES` (each database's effective
pool_size, reserve_pool, max_db_connections and pool_mode: an entry of [databases] may set its own and
then the [pgbouncer] section alone does not change it). Whether the running pools fit PostgreSQL is the
`pgbouncer` command's own `exceeds_postgres` rule, run on the same data (one analysis, not two), with the
databases PgBouncer has configured but no pool for yet counted as one pool each.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

from pgdoctor.analyze.findings import Finding, Severity
from pgdoctor.analyze.pgbouncer_rows import ADMIN_DB
from pgdoctor.analyze.sizing.pools import AppSpec, PgBouncerPlan, pgbouncer_values
from pgdoctor.collect.connections import ConnectionsData
from pgdoctor.collect.pgbouncer import DatabaseRow, PgBouncerData, PoolRow

# SHOW CONFIG's `changeable = no` settings of PgBouncer 1.18 (read only at start: a restart applies them,
# RELOAD does not), for snapshots taken before pgdoctor kept that column
START_ONLY = frozenset(
    {
        "disable_pqexec",
        "job_name",
        "listen_addr",
        "listen_backlog",
        "listen_port",
        "pidfile",
        "pkt_buf",
        "resolv_conf",
        "so_reuseport",
        "unix_socket_dir",
        "unix_socket_group",
        "unix_socket_mode",
        "user",
    }
)
# the [pgbouncer] key each per-database value of SHOW DATABASES (a [databases] entry's parameter) falls
# back to
DATABASE_KEYS = {
    "pool_size": "default_pool_size",
    "reserve_pool": "reserve_pool_size",
    "max_db_connections": "max_db_connections",
    "pool_mode": "pool_mode",
}


@dataclass(frozen=True)
class BouncerSetting:
    """One key of the [pgbouncer] plan beside PgBouncer's running value."""

    name: str
    value: str  # recommended
    current: str | None  # SHOW CONFIG; None when this PgBouncer has no such key
    changes: bool | None  # the recommendation differs from the running value (None: no running value)
    restart: bool | None  # applying it needs a restart of PgBouncer; False: RELOAD applies it


@dataclass(frozen=True)
class BouncerDatabase:
    """A database of PgBouncer (SHOW DATABASES) with its effective pool limits."""

    name: str
    pool_size: int | None
    reserve_pool: int | None
    max_db_connections: int
    pool_mode: str
    overrides: tuple[str, ...]  # parameters its [databases] entry sets to other than [pgbouncer]'s
    changes: tuple[str, ...]  # parameters whose effective value is not the recommended one


@dataclass(frozen=True)
class BouncerComparison:
    version: str
    settings: list[BouncerSetting]
    databases: list[BouncerDatabase]
    server_connections: int  # what the running pools may open to PostgreSQL (the exceeds_postgres sum)
    postgres_usable: int | None  # PostgreSQL's usable slots; None without a server
    findings: list[Finding] = field(default_factory=list)


def same(value: str, current: str) -> bool:
    """Whether a recommended value equals a SHOW CONFIG value: numbers as numbers (a seconds value may be
    shown as 5, 5.0 or 5s), words case-insensitively."""

    def number(text: str) -> float | None:
        t = text.strip().lower()
        t = t[:-1] if t.endswith("s") and t[:-1].replace(".", "", 1).isdigit() else t
        try:
            return float(t)
        except ValueError:
            return None

    a, b = number(value), number(current)
    if a is not None and b is not None:
        return a == b
    return value.strip().lower() == current.strip().lower()


def needs_restart(name: str, data: PgBouncerData) -> bool | None:
    if data.config_changeable is not None:
        changeable = data.config_changeable.get(name)
        return None if changeable is None else not changeable
    return name in START_ONLY


def compare_settings(wanted: dict[str, str], data: PgBouncerData) -> list[BouncerSetting]:
    out = []
    for name, value in wanted.items():
        current = data.config.get(name)
        out.append(
            BouncerSetting(
                name=name,
                value=value,
                current=current,
                changes=None if current is None else not same(value, current),
                restart=needs_restart(name, data),
            )
        )
    return out


def _int(text: str | None) -> int | None:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return None


def database_line(d: DatabaseRow, plan: PgBouncerPlan, config: dict[str, str]) -> BouncerDatabase:
    mode = d.pool_mode or config.get("pool_mode") or "session"
    effective: dict[str, object] = {
        "pool_size": d.pool_size,
        "reserve_pool": d.reserve_pool,
        "max_db_connections": d.max_connections,
        "pool_mode": mode,
    }
    glob: dict[str, object] = {
        "pool_size": _int(config.get("default_pool_size")),
        "reserve_pool": _int(config.get("reserve_pool_size")),
        "max_db_connections": _int(config.get("max_db_connections")),
        "pool_mode": config.get("pool_mode"),
    }
    overrides = tuple(
        k
        for k, v in effective.items()
        if v is not None and glob[k] is not None and (k != "pool_mode" or d.pool_mode) and v != glob[k]
    )
    changes = tuple(
        k
        for k, v in effective.items()
        if v is not None and not same(str(getattr(plan, DATABASE_KEYS[k])), str(v))
    )
    return BouncerDatabase(
        name=d.name,
        pool_size=d.pool_size,
        reserve_pool=d.reserve_pool,
        max_db_connections=d.max_connections,
        pool_mode=mode,
        overrides=overrides,
        changes=changes,
    )


def with_configured_pools(data: PgBouncerData) -> PgBouncerData:
    """`data` with one empty pool for each database PgBouncer has configured but no pool for yet: the
    first client opens one, so its size counts against PostgreSQL's slots too."""
    pooled = {p.database for p in data.pools}
    extra = [
        PoolRow(database=d.name, user=d.force_user or "*")
        for d in data.databases
        if d.name != ADMIN_DB and d.name not in pooled
    ]
    return dataclasses.replace(data, pools=[*data.pools, *extra]) if extra else data


def differs_finding(settings: list[BouncerSetting], databases: list[BouncerDatabase]) -> list[Finding]:
    """The running PgBouncer is not the recommended one: what to edit, and the admin command that applies
    it (printed, never run)."""
    changed = [s for s in settings if s.changes]
    dbs = [d for d in databases if d.changes and d.overrides]
    if not changed and not dbs:
        return []
    parts = [f"{s.name} {s.current} (recommended {s.value})" for s in changed]
    parts += [
        f"database {d.name}'s own "
        + ", ".join(f"{k}={getattr(d, k)}" for k in d.changes if k in d.overrides)
        + " in [databases]"
        for d in dbs
    ]
    restart = [s.name for s in changed if s.restart]
    edit = "the [pgbouncer] section of pgbouncer.ini (`-f pgbouncer` prints it)" if changed else ""
    if dbs:
        edit += (" and " if edit else "") + "the [databases] entries named above"
    advice = f"edit {edit}, then run RELOAD; on PgBouncer's admin console (pgdoctor never runs it)"
    if restart:
        advice += f"; {', '.join(restart)} take(s) effect only when PgBouncer restarts"
    return [
        Finding(
            Severity.INFO,
            "pgbouncer_differs",
            "pgbouncer",
            f"the running PgBouncer differs from the recommendation: {'; '.join(parts)}",
            advice,
            action="RELOAD;",  # on the admin console, after the edit
        )
    ]


def compare(plan: PgBouncerPlan, data: PgBouncerData, postgres: ConnectionsData | None) -> BouncerComparison:
    """`postgres`: the server behind PgBouncer, when the data does not already carry it."""
    from pgdoctor.analyze import pgbouncer as pooler

    if data.postgres is None and postgres is not None:
        data = dataclasses.replace(data, postgres=postgres)
    settings = compare_settings(pgbouncer_values(plan), data)
    databases = [database_line(d, plan, data.config) for d in data.databases if d.name != ADMIN_DB]
    report = pooler.analyze(with_configured_pools(data))
    total, _ = pooler.server_side_total(report.pools, _int(data.config.get("max_user_connections")) or 0)
    return BouncerComparison(
        version=data.version,
        settings=settings,
        databases=databases,
        server_connections=total,
        postgres_usable=report.postgres.usable if report.postgres is not None else None,
        findings=[f for f in report.findings if f.code == "exceeds_postgres"]
        + differs_finding(settings, databases),
    )


def observed_apps(data: PgBouncerData, postgres: ConnectionsData | None) -> list[AppSpec]:
    """The applications behind PgBouncer (SHOW CLIENTS per application_name; the console's clients left
    out) and those that reach PostgreSQL directly (client backends that are no PgBouncer server
    connection), each connection taken as one process: what max_client_conn must hold."""
    from pgdoctor.analyze.common import CLIENT_BACKEND

    counts = Counter(c.application_name or "(none)" for c in data.clients if c.database != ADMIN_DB)
    if postgres is not None:
        pooled = {s.remote_pid for s in data.servers if s.remote_pid}
        counts.update(
            row.application_name or "(none)"
            for row in postgres.activity
            if row.backend_type == CLIENT_BACKEND and row.pid not in pooled
        )
    return [
        AppSpec(name, n, 1, observed=True) for name, n in sorted(counts.items(), key=lambda x: (-x[1], x[0]))
    ]
