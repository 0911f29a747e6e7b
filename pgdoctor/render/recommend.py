"""Draw a RecommendReport: settings, pools, memory, findings; the conf/pgbouncer/sqlalchemy text; JSON."""

from __future__ import annotations

from pgdoctor.analyze.format import duration
from pgdoctor.analyze.recommend import RecommendReport
from pgdoctor.analyze.sample import HEADROOM
from pgdoctor.analyze.sizing import memory
from pgdoctor.analyze.sizing.pgbouncer_compare import BouncerComparison
from pgdoctor.analyze.sizing.pools import pgbouncer_values
from pgdoctor.analyze.sizing.units import format_bytes
from pgdoctor.render import recommend_text as emit
from pgdoctor.render.common import pooler_note
from pgdoctor.render.document import Cell, Column, Document, Section, Styled, Table, Text
from pgdoctor.render.recommend_json import to_json

__all__ = ["conf", "django", "document", "header", "pgbouncer", "sqlalchemy", "to_json"]


def header(report: RecommendReport) -> list[str]:
    i = report.inputs
    ram = f"{format_bytes(i.ram_bytes)} RAM" if i.ram_bytes is not None else "RAM not given"
    cpus = f"{i.cpus} CPUs" if i.cpus else f"CPUs not given (pools sized for {report.pools.cpus})"
    where = f"server {report.server.version}" if report.server else "no server"
    return [
        f"pgdoctor recommend: PostgreSQL {report.pg_major}, {ram}, {cpus}, {i.storage} storage, "
        f"{i.workload} workload ({where})",
    ]


def _apps_line(report: RecommendReport) -> str:
    p = report.pools
    if report.apps_source == "none":
        return "Applications: none given (--app NAME=PROCESSES[xTHREADS])"
    where = "PgBouncer's SHOW CLIENTS" if report.pgbouncer_current is not None else "pg_stat_activity"
    d = report.demand
    from_demand = d is not None and (d.source == "sample" or report.pgbouncer_current is None)
    if report.apps_source == "observed" and d is not None and from_demand:
        src = "measured by the sample" if d.source == "sample" else "seen in pg_stat_activity"
        seen = sum(a.seen for a in d.apps)
        left = f", {d.not_demand} of them not demand (leaked, stuck or held idle)" if d.not_demand else ""
        return (
            f"Applications ({src}): {len(p.apps)}, {seen} connections seen{left}; "
            f"{_needed(report)} needed at once; their pools open at most {p.client_total}"
        )
    src = f"observed in {where}" if report.apps_source == "observed" else "given"
    return (
        f"Applications ({src}): {len(p.apps)}, {_needed(report)} connections needed at once; their pools "
        f"open at most {p.client_total}"
    )


def _needed(report: RecommendReport) -> int:
    return sum(a.processes * a.threads for a in report.pools.apps)


def settings_table(report: RecommendReport) -> Table:
    live = report.server is not None
    columns = [Column("setting"), Column("value", "right")]
    if live:
        columns += [Column("current", "right"), Column("restart")]
    columns.append(Column("reason"))
    rows: list[list[Cell]] = []
    for s in report.settings:
        value: Cell = s.value if s.value is not None else Styled("(needs --ram)", "dim")
        if s.per_role and s.value is not None:
            value = f"{s.value} (per role)"
        row: list[Cell] = [s.name, value]
        if live:
            cur: Cell = s.current if s.current is not None else ""
            if s.changes:
                cur = Styled(s.current or "", "yellow")
            restart = (
                "pending"
                if s.pending_restart
                else ("yes" if s.restart else ("" if s.restart is None else "no"))
            )
            row += [cur, restart]
        row.append(s.reason)
        rows.append(row)
    return Table("PostgreSQL settings", columns, rows)


def pools_text(report: RecommendReport) -> Text:
    p = report.pools
    reserved = f"superuser_reserved_connections {p.superuser_reserved}"
    if report.pg_major >= 16:
        reserved += f", reserved_connections {p.reserved_connections}"
    return Text(
        [
            f"Server connection budget: {p.usable} usable slots [max_connections {p.max_connections} minus "
            f"{reserved}]; the CPUs run about {p.cpu_pool} queries at once ({p.cpus} CPUs x 2 + {p.spindles} "
            "spindle(s))",
            _apps_line(report),
            p.pgbouncer_reason,
        ]
    )


def apply_word(restart: bool | None) -> str:
    """How a PgBouncer setting takes effect: the admin console's RELOAD, or a restart."""
    return "" if restart is None else ("restart" if restart else "RELOAD")


def pgbouncer_table(report: RecommendReport) -> Table | None:
    b = report.pools.pgbouncer
    if b is None:
        return None
    cmp = report.pgbouncer_current
    running = {s.name: s for s in cmp.settings} if cmp is not None else {}
    columns = [Column("setting"), Column("value", "right")]
    if cmp is not None:
        columns += [Column("current", "right"), Column("apply")]
    columns.append(Column("reason"))
    rows: list[list[Cell]] = []
    for k, v in pgbouncer_values(b).items():
        row: list[Cell] = [k, v]
        if cmp is not None:
            s = running.get(k)
            cur: Cell = "" if s is None or s.current is None else s.current
            if s is not None and s.changes:
                cur = Styled(s.current or "", "yellow")
            row += [cur, apply_word(s.restart if s is not None else None)]
        row.append(b.reasons[k])
        rows.append(row)
    title = "PgBouncer [pgbouncer]" + (f", beside the running {cmp.version}" if cmp is not None else "")
    return Table(title, columns, rows)


def pgbouncer_running(cmp: BouncerComparison) -> list[Section]:
    """The running PgBouncer's databases and how its pools fit PostgreSQL."""
    fit = (
        f"the running pools may open {cmp.server_connections} server connections; PostgreSQL has "
        f"{cmp.postgres_usable} usable slots"
        if cmp.postgres_usable is not None
        else f"the running pools may open {cmp.server_connections} server connections (give --dsn to "
        "check them against PostgreSQL's slots)"
    )
    out: list[Section] = [Text([f"{cmp.version}: {fit}"])]
    if cmp.databases:
        rows: list[list[Cell]] = [
            [
                d.name,
                "" if d.pool_size is None else d.pool_size,
                "" if d.reserve_pool is None else d.reserve_pool,
                d.max_db_connections,
                d.pool_mode,
                ", ".join(d.overrides),
                Styled(", ".join(d.changes), "yellow") if d.changes else "",
            ]
            for d in cmp.databases
        ]
        columns = [
            Column("database"),
            Column("pool_size", "right"),
            Column("reserve_pool", "right"),
            Column("max_db_connections", "right"),
            Column("pool_mode"),
            Column("own in [databases]"),
            Column("differs"),
        ]
        out.append(Table("PgBouncer databases (SHOW DATABASES)", columns, rows))
    return out


def apps_table(report: RecommendReport) -> Table:
    columns = [
        Column("application"),
        Column("processes", "right"),
        Column("threads", "right"),
        Column("pool"),
        Column("pool_size", "right"),
        Column("max_overflow", "right"),
        Column("per process", "right"),
        Column("total", "right"),
    ]
    rows: list[list[Cell]] = [
        [
            a.name,
            a.processes,
            a.threads if a.kind != "async" else f"{a.threads} async",
            a.poolclass,
            "" if a.pool_size is None else a.pool_size,
            "" if a.max_overflow is None else a.max_overflow,
            a.per_process,
            a.total,
        ]
        for a in report.pools.apps
    ]
    target = "max_client_conn" if report.pools.pgbouncer else "usable server slots"
    limit = report.pools.pgbouncer.max_client_conn if report.pools.pgbouncer else report.pools.usable
    caption = f"total {report.pools.client_total} of {limit} {target}" if rows else ""
    engines = (
        "create_engine, create_async_engine"
        if any(a.kind == "async" for a in report.pools.apps)
        else ("create_engine")
    )
    return Table(f"Application pools (SQLAlchemy {engines})", columns, rows, caption)


def demand_table(report: RecommendReport) -> Table | None:
    """What each application was seen (or measured) using at once, and what it needs."""
    d = report.demand
    if d is None or not d.apps:
        return None
    columns = [Column("application"), Column("seen", "right"), Column("not demand", "right")]
    if d.source == "sample":
        columns += [
            Column("xacts/s", "right"),
            Column("xact time", "right"),
            Column("idle in xact", "right"),
            Column("busy (L)", "right"),
        ]
    columns += [Column("needed", "right")]
    if d.source == "sample":
        columns += [Column("needed if fixed", "right")]
    columns += [Column("processes x per process"), Column("how read")]
    rows: list[list[Cell]] = []
    for a in d.apps:
        row: list[Cell] = [a.name, a.seen, a.not_demand]
        if d.source == "sample":
            row += [
                "" if a.xacts_per_s is None else f"{a.xacts_per_s:g}",
                duration(a.xact_s) if a.xact_s is not None else "",
                "" if a.idle_share is None else f"{a.idle_share:.0%}",
                "" if a.busy is None else f"{a.busy:g}",
            ]
        row.append(a.needed)
        if d.source == "sample":
            row.append("" if a.needed_fixed is None else a.needed_fixed)
        row += [f"{a.processes} x {a.per_process}", a.topology]
        rows.append(row)
    if d.source == "sample":
        window = duration(d.window_s or 0)
        title = f"Measured demand ({window} sample; needed = max(seen in use, L x {HEADROOM:g}))"
        caption = (
            f"server connections busy in transactions in the busiest database ({d.busiest}): "
            f"{d.server_busy:g} on average, {d.server_needed} needed with headroom, "
            f"{d.server_needed_fixed} without the idle time inside transactions"
            if d.busiest is not None
            else "no transactions seen"
        )
    else:
        title = "Observed demand (one read of pg_stat_activity; needed = connections in use at once)"
        caption = "`recommend --sample 30s` measures it (Little's law)"
    return Table(title, columns, rows, caption)


def fixed_text(report: RecommendReport) -> Text | None:
    """What fixing the applications buys: per application whose transactions idle, the connections it
    needs as it runs and once they no longer idle."""
    d = report.demand
    if d is None or d.source != "sample":
        return None
    lines = [
        f"{a.name}: sized for {a.needed} connections as it runs; {a.needed_fixed} would do once its "
        f"transactions no longer idle ({a.idle_share:.0%} of their time now): end the transaction before "
        "the slow call (see the findings) rather than keep the bigger pool"
        for a in d.apps
        if a.needed_fixed is not None and a.needed_fixed < a.needed and (a.idle_share or 0) >= 0.5
    ]
    return Text(lines) if lines else None


def memory_text(report: RecommendReport) -> Text:
    lines = []
    if report.memory is not None:
        lines.append(f"Memory, recommended: {memory.describe(report.memory)}")
    if report.current_memory is not None:
        lines.append(f"Memory, running: {memory.describe(report.current_memory)}")
    if not lines:
        lines.append("Memory: give --ram for the worst-case check")
    return Text(lines)


def document(report: RecommendReport) -> Document:
    sections: list[Section] = [settings_table(report), pools_text(report)]
    bouncer = pgbouncer_table(report)
    if bouncer is not None:
        sections.append(bouncer)
    if report.pgbouncer_current is not None:
        sections += pgbouncer_running(report.pgbouncer_current)
    demand = demand_table(report)
    if demand is not None:
        sections.append(demand)
        fixed = fixed_text(report)
        if fixed is not None:
            sections.append(fixed)
    sections += [apps_table(report), memory_text(report)]
    sections += pooler_note(report.server)
    return Document(header(report)[0], sections, report.findings, primary=0)


def conf(report: RecommendReport) -> str:
    return emit.conf_block(
        [
            *header(report),
            "paste into postgresql.conf (or a file it includes); restart for postmaster settings",
        ],
        [(s.name, s.value, s.reason, s.per_role) for s in report.settings],
    )


def pgbouncer(report: RecommendReport) -> str | None:
    b = report.pools.pgbouncer
    if b is None:
        return None
    return emit.pgbouncer_block(
        [
            *header(report),
            "the [pgbouncer] section of pgbouncer.ini; keep your [databases], listen_* and auth_* lines",
        ],
        b,
    )


def sqlalchemy(report: RecommendReport) -> str:
    return emit.sqlalchemy_block(header(report), report.pools.apps, report.pools.pgbouncer is not None)


def django(report: RecommendReport) -> str:
    return emit.django_block(header(report), report.pools.apps, report.pools.pgbouncer is not None)
