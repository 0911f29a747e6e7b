"""`pgdoctor recommend`: settings, pools and the memory check; with a server, the live comparison."""

from __future__ import annotations

from dataclasses import dataclass, replace

from pgdoctor.analyze.findings import Finding, sort_findings
from pgdoctor.analyze.recommend_findings import (
    apps_observed,
    dangerous,
    demand_assumed,
    not_demand_note,
    server_basis,
)
from pgdoctor.analyze.sample import SampleReport
from pgdoctor.analyze.sizing import demand as demands
from pgdoctor.analyze.sizing import memory, pgbouncer_compare, pgtune, pools, settings
from pgdoctor.analyze.sizing.demand import Demand
from pgdoctor.analyze.sizing.memory import MemoryCheck
from pgdoctor.analyze.sizing.pgbouncer_compare import BouncerComparison
from pgdoctor.analyze.sizing.pools import PoolPlan
from pgdoctor.analyze.sizing.units import (
    KB,
    conf_bytes,
    conf_ms,
    format_kb,
    format_ms,
    setting_bytes,
    setting_ms,
)
from pgdoctor.collect.connections import ConnectionsData
from pgdoctor.collect.pgbouncer import PgBouncerData
from pgdoctor.collect.server import ServerInfo
from pgdoctor.collect.settings import FullSettingRow, SettingsData


@dataclass(frozen=True)
class Inputs:
    ram_bytes: int | None
    cpus: int | None
    storage: str = "ssd"
    workload: str = "web"
    pg_version: int | None = None  # --pg-version; else the server's, else the newest supported
    max_connections: int | None = None
    apps: tuple[pools.AppSpec, ...] = ()
    pgbouncer: bool | None = None  # None: advise one when the applications do not fit directly
    databases: int = 1


@dataclass(frozen=True)
class SettingLine:
    name: str
    value: str | None
    reason: str
    per_role: bool
    differs_from_pgtune: bool
    current: str | None = None  # the server's value, written the same way (None offline)
    context: str | None = None  # pg_settings.context
    restart: bool | None = None  # applying the value needs a restart (context = postmaster)
    pending_restart: bool | None = None  # the server has a changed value waiting for a restart
    changes: bool | None = None  # the recommendation differs from the running value


@dataclass(frozen=True)
class RecommendReport:
    inputs: Inputs
    pg_major: int
    server: ServerInfo | None
    apps_source: str  # "given" (--app), "observed" (pg_stat_activity) or "none"
    settings: list[SettingLine]
    pools: PoolPlan
    memory: MemoryCheck | None  # None without --ram and without a server
    current_memory: MemoryCheck | None  # the running settings, with a server
    findings: list[Finding]
    # the [pgbouncer] plan beside the running PgBouncer (--pgbouncer-dsn, or a snapshot's pgbouncer data)
    pgbouncer_current: BouncerComparison | None = None
    # what the applications use at once: one read of pg_stat_activity, or a sample (--sample)
    demand: Demand | None = None


def format_current(row: FullSettingRow) -> str:
    """A pg_settings value written as postgresql.conf takes it ('128MB', '60s', 'on')."""
    size = setting_bytes(row.setting, row.unit)
    if size is not None:
        return format_kb(size // KB) if size % KB == 0 else f"{size}B"
    ms = setting_ms(row.setting, row.unit)
    if ms is not None and float(row.setting) >= 0:
        return format_ms(ms)
    return row.setting


def _same(value: str, row: FullSettingRow) -> bool:
    """Whether a recommended value equals the running one (sizes within the setting's own unit)."""
    rec_bytes, cur_bytes = conf_bytes(value), setting_bytes(row.setting, row.unit)
    if rec_bytes is not None and cur_bytes is not None:
        step = setting_bytes("1", row.unit) or 1
        return abs(rec_bytes - cur_bytes) < step
    rec_ms, cur_ms = conf_ms(value), setting_ms(row.setting, row.unit)
    if rec_ms is not None and cur_ms is not None:
        return abs(rec_ms - cur_ms) < 1
    if row.vartype in ("real", "integer"):
        try:
            return float(value) == float(row.setting)
        except ValueError:
            return False
    aliases = {"on": "pglz"} if row.name == "wal_compression" else {}
    return aliases.get(value.lower(), value.lower()) == aliases.get(row.setting.lower(), row.setting.lower())


def _setting_number(rows: dict[str, FullSettingRow], name: str, default: float) -> float:
    row = rows.get(name)
    try:
        return float(row.setting) if row else default
    except ValueError:
        return default


def _setting_bytes(rows: dict[str, FullSettingRow], name: str) -> int:
    row = rows.get(name)
    return (setting_bytes(row.setting, row.unit) or 0) if row else 0


def cap_work_mem(mem: MemoryCheck) -> int | None:
    """The largest work_mem (kB) whose worst case leaves memory.HEADROOM_WARN_PCT of the RAM free, when
    pgtune's figure does not (its (RAM - shared_buffers) / 3 per connection, times PostgreSQL 15's
    hash_mem_multiplier of 2, plus autovacuum, can reach the whole RAM), but not below 4MB; None when it
    already fits."""
    if mem.ram_bytes is None or mem.headroom_pct is None or mem.headroom_pct >= memory.HEADROOM_WARN_PCT:
        return None
    budget = mem.ram_bytes * (1 - memory.HEADROOM_WARN_PCT / 100) - (
        mem.shared_buffers_bytes + mem.wal_buffers_bytes + mem.autovacuum_total_bytes
    )
    per_backend = mem.backends * mem.hash_mem_multiplier
    cap_kb = int(budget / per_backend / KB) if per_backend else 0
    return max(cap_kb, 4 * 1024)  # PostgreSQL's default; below it the finding stays


def with_work_mem(computed: settings.Computed, work_mem_kb: int, before: MemoryCheck) -> settings.Computed:
    """`computed` with work_mem lowered to `work_mem_kb`, the reason saying why."""
    note = (
        f"; capped from {format_kb(before.work_mem_bytes // KB)} so that the worst case "
        f"({before.backends} backends x work_mem x hash_mem_multiplier {before.hash_mem_multiplier:g}, plus "
        f"shared_buffers and autovacuum) leaves {memory.HEADROOM_WARN_PCT:g}% of the RAM free"
    )
    recs = [
        replace(r, value=format_kb(work_mem_kb), reason=r.reason + note, differs_from_pgtune=True)
        if r.name == "work_mem"
        else r
        for r in computed.recs
    ]
    return replace(computed, work_mem_kb=work_mem_kb, recs=recs)


def current_memory(rows: dict[str, FullSettingRow], ram_bytes: int | None) -> memory.MemoryCheck:
    av_mem = _setting_bytes(rows, "autovacuum_work_mem") or _setting_bytes(rows, "maintenance_work_mem")
    return memory.check(
        ram_bytes=ram_bytes,
        shared_buffers_bytes=_setting_bytes(rows, "shared_buffers"),
        wal_buffers_bytes=_setting_bytes(rows, "wal_buffers"),
        work_mem_bytes=_setting_bytes(rows, "work_mem"),
        hash_mem_multiplier=_setting_number(rows, "hash_mem_multiplier", 1.0),
        max_connections=int(_setting_number(rows, "max_connections", 100)),
        max_parallel_workers=int(_setting_number(rows, "max_parallel_workers", 8)),
        autovacuum_workers=int(_setting_number(rows, "autovacuum_max_workers", 3)),
        autovacuum_mem_bytes=av_mem,
    )


def work_mem_reason(inputs: Inputs, plan: PoolPlan) -> str:
    """pgtune's work_mem formula as applied here, and over which connection count."""
    workers = pgtune.parallel(inputs.cpus, inputs.workload) or None
    n_workers = workers.max_worker_processes if workers else settings.DEFAULT_MAX_WORKER_PROCESSES
    divisor = {"web": "", "oltp": "", "dw": ", halved for dw", "mixed": ", halved for mixed",
               "desktop": ", /6 for desktop"}[inputs.workload]  # fmt: skip
    formula = (
        f"(RAM - shared_buffers) / (({plan.work_mem_connections} connections + {n_workers} worker "
        "processes) x 3)"
        f"{divisor}, at least 4MB"
    )
    pgtune_conns = settings.PGTUNE_MAX_CONNECTIONS[inputs.workload]
    if plan.work_mem_connections == pgtune_conns and plan.max_connections == pgtune_conns:
        return f"pgtune's formula: {formula}"
    return (
        f"pgtune's formula over the real connection budget ({plan.work_mem_basis}) instead of pgtune's "
        f"{pgtune_conns}: {formula}"
    )


def fit_memory(
    computed: settings.Computed, inputs: Inputs, plan: PoolPlan, hash_mult: float
) -> tuple[settings.Computed, MemoryCheck | None]:
    """The recommended configuration's worst case; work_mem capped when it leaves too little RAM."""
    if computed.shared_buffers_kb is None:
        return computed, None
    sb, wb = computed.shared_buffers_kb, computed.wal_buffers_kb
    assert computed.work_mem_kb is not None and computed.maintenance_work_mem_kb is not None
    assert wb is not None
    av_kb = computed.autovacuum_work_mem_kb or computed.maintenance_work_mem_kb

    def check_with(c: settings.Computed, work_mem_kb: int) -> MemoryCheck:
        return memory.check(
            ram_bytes=inputs.ram_bytes,
            shared_buffers_bytes=sb * KB,
            wal_buffers_bytes=wb * KB,
            work_mem_bytes=work_mem_kb * KB,
            hash_mem_multiplier=hash_mult,
            max_connections=plan.max_connections,
            max_parallel_workers=c.max_parallel_workers,
            autovacuum_workers=c.autovacuum_max_workers,
            autovacuum_mem_bytes=av_kb * KB,
        )

    mem = check_with(computed, computed.work_mem_kb)
    capped = cap_work_mem(mem)
    if capped is not None and capped < computed.work_mem_kb:
        computed = with_work_mem(computed, capped, mem)
        mem = check_with(computed, capped)
    return computed, mem


def setting_line(rec: settings.Rec, row: FullSettingRow | None) -> SettingLine:
    """A recommendation, beside the running value when there is a server."""
    if row is None:
        return SettingLine(rec.name, rec.value, rec.reason, rec.per_role, rec.differs_from_pgtune)
    return SettingLine(
        rec.name,
        rec.value,
        rec.reason,
        rec.per_role,
        rec.differs_from_pgtune,
        current=format_current(row),
        context=row.context,
        restart=row.context == "postmaster",
        pending_restart=row.pending_restart,
        changes=None if rec.value is None else not _same(rec.value, row),
    )


def analyze(
    inputs: Inputs,
    settings_data: SettingsData | None = None,
    connections_data: ConnectionsData | None = None,
    pgbouncer_data: PgBouncerData | None = None,
    sample: SampleReport | None = None,
) -> RecommendReport:
    """`pgbouncer_data`: a running PgBouncer's console (unless --no-pgbouncer): the plan sizes one, takes
    the applications from its clients when none are given, and is compared with it. `sample`: a sample
    of the server (`--sample`): pools and PgBouncer sized from the measured demand."""
    server = settings_data.server if settings_data else None
    rows = settings_data.by_name() if settings_data else {}
    pg_major = inputs.pg_version or (server.major if server else settings.NEWEST_PG)
    bouncer = pgbouncer_data if inputs.pgbouncer is not False else None

    demand: Demand | None = None
    if sample is not None:
        demand = demands.from_sample(sample, connections_data)
    elif connections_data is not None and (bouncer is None or inputs.apps):
        demand = demands.from_activity(connections_data)
    apps, raised = demands.apply(list(inputs.apps), demand)
    apps_source = "given" if inputs.apps else ("observed" if apps else "none")
    observed_where = "pg_stat_activity"
    if not inputs.apps and bouncer is not None and sample is None:
        apps = pgbouncer_compare.observed_apps(bouncer, connections_data)
        apps_source = "observed" if apps else "none"
        observed_where = "PgBouncer's SHOW CLIENTS" + (
            " and pg_stat_activity (direct connections)" if connections_data is not None else ""
        )
    server_needed = demand.server_needed if demand is not None else None

    plan = pools.plan(
        apps,
        cpus=inputs.cpus,
        storage=inputs.storage,
        workload=inputs.workload,
        max_connections=inputs.max_connections,
        pgbouncer=True if bouncer is not None else inputs.pgbouncer,
        databases=inputs.databases,
        reserved_connections=int(_setting_number(rows, "reserved_connections", 0)) if pg_major >= 16 else 0,
        server_needed=server_needed,
        server_needed_basis=server_basis(demand),
    )
    if demand is not None and demand.not_demand:
        said = plan.pgbouncer_reason.replace(
            "no PgBouncer needed: ", "no PgBouncer needed for the demand: ", 1
        )
        plan = replace(plan, pgbouncer_reason=said + not_demand_note(demand))
    if bouncer is not None and inputs.pgbouncer is None:
        plan = replace(plan, pgbouncer_reason=f"PgBouncer sized: one is running ({bouncer.version})")
    hw = settings.Hardware(inputs.ram_bytes, inputs.cpus, inputs.storage, inputs.workload, pg_major)
    build = settings.Build(
        wal_compression=tuple(rows["wal_compression"].enumvals or ()) if "wal_compression" in rows else None,
        io_method=tuple(rows["io_method"].enumvals or ()) if "io_method" in rows else None,
    )
    computed = settings.recommend(
        hw,
        max_connections=plan.max_connections,
        max_connections_reason=plan.max_connections_reason,
        work_mem_connections=plan.work_mem_connections,
        work_mem_reason=work_mem_reason(inputs, plan),
        superuser_reserved=plan.superuser_reserved,
        build=build,
    )
    hash_mult = _setting_number(rows, "hash_mem_multiplier", 2.0 if pg_major >= 15 else 1.0)
    computed, mem = fit_memory(computed, inputs, plan, hash_mult)
    findings: list[Finding] = list(plan.findings) + raised
    if demand is not None:
        findings += demand.findings
    if mem is not None:
        findings += memory.findings(
            mem, code="memory_overcommit", subject="recommended", what="the recommended configuration"
        )
    cur_mem: memory.MemoryCheck | None = None
    if settings_data is not None:
        cur_mem = current_memory(rows, inputs.ram_bytes)
        findings += memory.findings(
            cur_mem, code="memory_overcommit", subject="running", what="the running configuration"
        )
        findings += dangerous(rows)
    comparison = None
    if bouncer is not None and plan.pgbouncer is not None:
        comparison = pgbouncer_compare.compare(plan.pgbouncer, bouncer, connections_data)
        findings += comparison.findings
    if apps_source == "observed":
        if demand is not None and not (bouncer is not None and sample is None):
            findings.append(demand_assumed(demand))
        else:
            findings.append(apps_observed(apps, observed_where))
    return RecommendReport(
        inputs=inputs,
        pg_major=pg_major,
        server=server,
        apps_source=apps_source,
        settings=[setting_line(rec, rows.get(rec.name)) for rec in computed.recs],
        pools=plan,
        memory=mem,
        current_memory=cur_mem,
        findings=sort_findings(findings),
        pgbouncer_current=comparison,
        demand=demand,
    )
