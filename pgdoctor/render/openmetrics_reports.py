"""Each command's report as the metric families of `--format openmetrics` (declared in
`pgdoctor.render.openmetrics.METRICS`): one function per report, which returns the measurements only,
so a command holding several reports (triage) can emit their `union` with its own findings. `metrics_of`
is the whole exposition of one command's report."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pgdoctor.analyze.sessions import CLASSES, IDLE_IN_XACT
from pgdoctor.render.openmetrics import Family, exposition, family

if TYPE_CHECKING:
    from pgdoctor.analyze.connections import ConnectionsReport
    from pgdoctor.analyze.locks import LocksReport
    from pgdoctor.analyze.pgbouncer import PgBouncerReport
    from pgdoctor.analyze.sample import SampleReport
    from pgdoctor.analyze.slow_queries import SlowQueriesReport
    from pgdoctor.analyze.triage import TriageReport


def _maximum(f: Family, values: dict[str, list[float | None]]) -> Family:
    """One sample per key: the largest of its values that are known (none known: no sample)."""
    for key, seen in values.items():
        known = [v for v in seen if v is not None]
        if known:
            f.add(max(known), key)
    return f


def _count_and_longest(count: str, longest: str, rows: Iterable[tuple[str, float | None]]) -> list[Family]:
    """Per application: how many rows (`count`) and the largest of their known ages (`longest`)."""
    counts: dict[str, int] = defaultdict(int)
    ages: dict[str, list[float | None]] = defaultdict(list)
    for app, age in rows:
        counts[app] += 1
        ages[app].append(age)
    count_f = family(count)
    for app, n in sorted(counts.items()):
        count_f.add(n, app)
    return [count_f, _maximum(family(longest), ages)]


def connections_metrics(report: ConnectionsReport) -> list[Family]:
    """Capacity and usage, sessions per application/role/database and class, the oldest transactions.
    Read from the process list (--ps) with no readable configuration, the capacity is unknown: left out."""
    cap = report.capacity
    out: list[Family] = []
    if report.ps is None or report.ps.settings is not None:
        out += [
            family("pgdoctor_max_connections", cap.max_connections),
            family("pgdoctor_superuser_reserved_connections", cap.superuser_reserved_connections),
            family("pgdoctor_reserved_connections", cap.reserved_connections),
            family("pgdoctor_usable_connections", cap.usable),
            family("pgdoctor_free_connections", cap.slots_left),
            # unrounded (usage_pct is rounded to 0.1 %): an alert at 0.8 tells 80.04 % from 80 %
            family("pgdoctor_connections_usage_ratio", cap.clients / cap.usable if cap.usable else 1.0),
        ]
    out.append(family("pgdoctor_client_connections", cap.clients))
    counts: dict[tuple[str, str, str, str], int] = defaultdict(int)
    xact: dict[str, list[float | None]] = defaultdict(list)
    idle_xact: dict[str, list[float | None]] = defaultdict(list)
    for s in report.sessions:
        counts[(s.application_name, s.usename or "", s.datname or "", s.cls)] += 1
        xact[s.application_name].append(s.xact_age_s)
        if s.cls in IDLE_IN_XACT:
            idle_xact[s.application_name].append(s.state_age_s)
    sessions = family("pgdoctor_sessions")
    order = {c: i for i, c in enumerate(CLASSES)}
    for (app, user, db, cls), n in sorted(
        counts.items(), key=lambda kv: (kv[0][:3], order.get(kv[0][3], 99))
    ):
        sessions.add(n, app, user, db, cls)
    background = family("pgdoctor_background_backends")
    kinds: dict[str, int] = defaultdict(int)
    for b in report.background:
        kinds[b.backend_type or "unknown"] += 1
    for kind, n in sorted(kinds.items()):
        background.add(n, kind)
    return [
        *out,
        sessions,
        background,
        _maximum(family("pgdoctor_oldest_transaction_seconds"), xact),
        _maximum(family("pgdoctor_oldest_idle_in_transaction_seconds"), idle_xact),
    ]


def sample_metrics(report: SampleReport) -> list[Family]:
    """connections --sample: per unit (application, client address, role when no application name)."""
    held_max = family("pgdoctor_sample_connections_held_max")
    held_mean = family("pgdoctor_sample_connections_held_mean")
    busy = family("pgdoctor_sample_connections_busy_mean")
    share = family("pgdoctor_sample_time_share_ratio")
    rate = family("pgdoctor_sample_transactions_per_second")
    p95 = family("pgdoctor_sample_transaction_p95_seconds")
    longest = family("pgdoctor_sample_transaction_max_seconds")
    idle = family("pgdoctor_sample_idle_in_transaction_ratio")
    for g in report.groups:
        unit = (g.application, g.client, g.user or "")
        held_max.add(g.held_max, *unit)
        held_mean.add(g.held_mean, *unit)
        busy.add(g.busy_mean, *unit)
        for cls, part in g.time_share.items():
            share.add(part, *unit, cls)
        rate.add(g.xacts.per_s, *unit)
        p95.add(g.xacts.p95_s, *unit)
        longest.add(g.xacts.max_s, *unit)
        idle.add(g.xacts.idle_share, *unit)
    return [
        family("pgdoctor_sample_duration_seconds", report.duration_s),
        family("pgdoctor_sample_usable_connections", report.usable),
        family("pgdoctor_sample_client_connections_max", report.clients_max),
        *(held_max, held_mean, busy, share, rate, p95, longest, idle),
    ]


def locks_metrics(report: LocksReport) -> list[Family]:
    """Who waits, how long, behind which applications' root blockers; deadlocks; the lock table."""
    roots: dict[str, int] = defaultdict(int)
    behind: dict[str, int] = defaultdict(int)
    root_xact: dict[str, list[float | None]] = defaultdict(list)
    for r in report.roots:
        app = r.application_name or ""
        roots[app] += 1
        behind[app] += r.blocks_total
        root_xact[app].append(r.xact_age_s)
    roots_f, behind_f = family("pgdoctor_lock_root_blockers"), family("pgdoctor_lock_root_blocked_sessions")
    for app in sorted(roots):
        roots_f.add(roots[app], app)
        behind_f.add(behind[app], app)
    out = [
        *_count_and_longest(
            "pgdoctor_lock_waiting_sessions",
            "pgdoctor_lock_wait_longest_seconds",
            ((w.application_name, w.wait_s) for w in report.waiting),
        ),
        roots_f,
        behind_f,
        _maximum(family("pgdoctor_lock_root_transaction_seconds"), root_xact),
        family("pgdoctor_deadlock_groups", len(report.deadlocks)),
    ]
    if report.lock_table is not None:
        table = report.lock_table
        out.append(
            family(
                "pgdoctor_lock_table_usage_ratio",
                table.shared_entries / table.capacity if table.capacity else 0,
            )
        )
    return out


def slow_queries_metrics(report: SlowQueriesReport) -> list[Family]:
    """The top statements (as --sort and --limit chose them) by queryid, their totals, what runs now."""
    out: list[Family] = []
    window = report.interval_s if report.interval_s is not None else report.stats_reset_age_s
    if window is not None:
        out.append(family("pgdoctor_statements_window_seconds", window))
    if report.totals is not None:
        out += [
            family("pgdoctor_statements_exec_time_seconds", report.totals.all_exec_ms / 1000),
            family("pgdoctor_statements_entries", report.totals.entries),
        ]
    if report.max_entries is not None:
        out.append(family("pgdoctor_statements_max_entries", report.max_entries))
    share, total = family("pgdoctor_statement_time_share_ratio"), family("pgdoctor_statement_time_seconds")
    calls, mean = family("pgdoctor_statement_calls"), family("pgdoctor_statement_mean_seconds")
    for s in report.statements:
        key = ("" if s.queryid is None else str(s.queryid), s.database, s.user)
        share.add(None if s.pct_total is None else s.pct_total / 100, *key)
        total.add(s.total_ms / 1000, *key)
        calls.add(s.calls, *key)
        mean.add(None if s.mean_ms is None else s.mean_ms / 1000, *key)
    running = _count_and_longest(
        "pgdoctor_running_statements",
        "pgdoctor_running_statement_longest_seconds",
        ((r.application_name, r.duration_s) for r in report.running),
    )
    return [*out, share, total, calls, mean, *running]


def pgbouncer_metrics(report: PgBouncerReport) -> list[Family]:
    """Per pool: clients active and waiting, server connections by state, the longest wait; per
    application: its clients by state; the client connections against max_client_conn."""
    clients, servers = family("pgdoctor_pgbouncer_pool_clients"), family("pgdoctor_pgbouncer_pool_servers")
    maxwait, size = family("pgdoctor_pgbouncer_pool_maxwait_seconds"), family("pgdoctor_pgbouncer_pool_size")
    for p in report.pools:
        clients.add(p.cl_active, p.database, p.user, "active").add(
            p.cl_waiting, p.database, p.user, "waiting"
        )
        for state in ("active", "idle", "used", "tested", "login"):
            servers.add(getattr(p, f"sv_{state}"), p.database, p.user, state)
        maxwait.add(p.maxwait_s, p.database, p.user)
        size.add(p.pool_size, p.database, p.user)
    by_app: dict[tuple[str, str], int] = defaultdict(int)
    for g in report.client_groups:
        for state in ("active", "waiting", "other"):
            by_app[(g.application_name, state)] += getattr(g, state)
    apps = family("pgdoctor_pgbouncer_application_clients")
    for (app, state), n in sorted(by_app.items()):
        apps.add(n, app, state)
    return [
        clients,
        servers,
        maxwait,
        size,
        apps,
        family("pgdoctor_pgbouncer_clients", report.clients_total),
        family("pgdoctor_pgbouncer_max_client_conn", report.max_client_conn),
    ]


def triage_metrics(report: TriageReport) -> str:
    """triage: the union of what its sub-reports measure (slow-queries' only when pg_stat_statements
    could be read: triage reports that as a note), with every command's findings under command="triage"."""
    families = connections_metrics(report.connections) + locks_metrics(report.locks)
    if report.slow_queries.unusable is None:
        families += slow_queries_metrics(report.slow_queries)
    if report.pgbouncer is not None:
        families += pgbouncer_metrics(report.pgbouncer)
    return exposition("triage", families, report.every_finding, server_version=report.server.version)


def metrics_of(command: str, report: Any) -> str:
    """The exposition of one command's report: its measurements, findings, pgdoctor_up (0 when the
    report could not read its source at all) and pgdoctor_info."""
    from pgdoctor.analyze.connections import ConnectionsReport
    from pgdoctor.analyze.locks import LocksReport
    from pgdoctor.analyze.pgbouncer import PgBouncerReport
    from pgdoctor.analyze.sample import SampleReport
    from pgdoctor.analyze.slow_queries import SlowQueriesReport
    from pgdoctor.analyze.triage import TriageReport

    if isinstance(report, TriageReport):
        return triage_metrics(report)
    if isinstance(report, PgBouncerReport):
        return exposition(command, pgbouncer_metrics(report), report.findings, server_version=report.version)
    measure: Any = {
        ConnectionsReport: connections_metrics,
        SampleReport: sample_metrics,
        LocksReport: locks_metrics,
        SlowQueriesReport: slow_queries_metrics,
    }[type(report)]
    version = report.server.version
    if isinstance(report, ConnectionsReport) and report.ps is not None:
        version = report.ps.version or ""
    return exposition(
        command,
        measure(report),
        report.findings,
        up=getattr(report, "unusable", None) is None,
        server_version=version,
    )
