"""`--format openmetrics`: what a command measured as Prometheus/OpenMetrics gauges, for a scraper or cron
plus node_exporter's textfile collector.

Every metric is declared once, in METRICS (its help, labels and the commands that emit it; the README's
metrics table is checked against it by tests/test_docs.py). A command's report becomes `Family`s
(`pgdoctor/render/openmetrics_reports.py`, one function per report); `exposition` adds `pgdoctor_up`,
`pgdoctor_info` and one `pgdoctor_finding` per finding, and writes the text with prometheus_client
(imported here only, when the format is chosen), which escapes label values (quotes, backslashes,
newlines) and ends the exposition with `# EOF`. Every metric is a gauge: each is what this run measured
(node_exporter's textfile collector takes no timestamps and no OpenMetrics-only types).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pgdoctor import __version__
from pgdoctor.analyze.findings import Finding

# triage holds the reports of connections, locks, slow-queries and pgbouncer: it emits their union
CONNECTIONS = ("connections", "triage")
SAMPLE = ("connections --sample",)
LOCKS = ("locks", "triage")
SLOW = ("slow-queries", "triage")
PGBOUNCER = ("pgbouncer", "triage")
EVERY = ("connections", "locks", "slow-queries", "pgbouncer", "triage")
POOL = ("database", "user")
UNIT = ("application", "client", "user")  # a --sample unit


@dataclass(frozen=True)
class Spec:
    name: str
    help: str
    labels: tuple[str, ...]
    commands: tuple[str, ...]  # the commands that emit it (the README's table)

    @property
    def unit(self) -> str:
        """The OpenMetrics UNIT: the name's suffix when it is a unit (seconds, ratio)."""
        return next((u for u in ("seconds", "ratio") if self.name.endswith("_" + u)), "")


def _specs(*rows: tuple[str, str, tuple[str, ...], tuple[str, ...]]) -> dict[str, Spec]:
    return {row[0]: Spec(*row) for row in rows}


METRICS: dict[str, Spec] = _specs(
    ("pgdoctor_up", "1: the command read what it measures; 0: it could not (the error is on stderr)",
     ("command",), EVERY),
    ("pgdoctor_info", "Always 1: pgdoctor's version and the server's",
     ("command", "version", "server_version"), EVERY),
    ("pgdoctor_finding", "1 for each finding of this run", ("command", "code", "severity", "subject"), EVERY),
    # connections (over SQL or --ps)
    ("pgdoctor_max_connections", "max_connections", (), CONNECTIONS),
    ("pgdoctor_superuser_reserved_connections", "superuser_reserved_connections", (), CONNECTIONS),
    ("pgdoctor_reserved_connections", "reserved_connections (PostgreSQL 16+, else 0)", (), CONNECTIONS),
    ("pgdoctor_usable_connections", "Ordinary slots: max_connections minus both reserves", (), CONNECTIONS),
    ("pgdoctor_client_connections", "Client backends in use, pgdoctor's own left out", (), CONNECTIONS),
    ("pgdoctor_free_connections", "Ordinary slots still free", (), CONNECTIONS),
    ("pgdoctor_connections_usage_ratio", "Client backends / usable slots", (), CONNECTIONS),
    ("pgdoctor_sessions", "Client sessions by application, role, database and class",
     ("application", "user", "database", "class"), CONNECTIONS),
    ("pgdoctor_background_backends", "Backends that are not clients, by backend_type", ("backend_type",),
     CONNECTIONS),
    ("pgdoctor_oldest_transaction_seconds", "Age of the application's oldest open transaction",
     ("application",), CONNECTIONS),
    ("pgdoctor_oldest_idle_in_transaction_seconds",
     "How long the application's longest idle-in-transaction session has been so", ("application",),
     CONNECTIONS),
    # connections --sample
    ("pgdoctor_sample_duration_seconds", "How long the sample ran", (), SAMPLE),
    ("pgdoctor_sample_usable_connections", "Ordinary slots during the sample", (), SAMPLE),
    ("pgdoctor_sample_client_connections_max", "Most client sessions at one tick", (), SAMPLE),
    ("pgdoctor_sample_connections_held_max", "Most connections the unit held at one tick", UNIT, SAMPLE),
    ("pgdoctor_sample_connections_held_mean", "Connections the unit held, on average", UNIT, SAMPLE),
    ("pgdoctor_sample_connections_busy_mean", "Connections of the unit in a transaction, on average", UNIT,
     SAMPLE),
    ("pgdoctor_sample_time_share_ratio", "Share of the unit's session time in each class",
     (*UNIT, "class"), SAMPLE),
    ("pgdoctor_sample_transactions_per_second", "Transactions the unit ended per second", UNIT, SAMPLE),
    ("pgdoctor_sample_transaction_p95_seconds", "95th percentile of the unit's transaction durations", UNIT,
     SAMPLE),
    ("pgdoctor_sample_transaction_max_seconds", "The unit's longest transaction", UNIT, SAMPLE),
    ("pgdoctor_sample_idle_in_transaction_ratio", "Share of the unit's transaction time idle in transaction",
     UNIT, SAMPLE),
    # locks
    ("pgdoctor_lock_waiting_sessions", "Sessions waiting on a lock (as shown: --min-wait applies)",
     ("application",), LOCKS),
    ("pgdoctor_lock_wait_longest_seconds", "The application's longest lock wait", ("application",), LOCKS),
    ("pgdoctor_lock_root_blockers", "Root blockers: sessions that block others and wait on nobody",
     ("application",), LOCKS),
    ("pgdoctor_lock_root_blocked_sessions", "Sessions queued, directly or not, behind the application's "
     "root blockers", ("application",), LOCKS),
    ("pgdoctor_lock_root_transaction_seconds", "Age of the oldest transaction of the application's root "
     "blockers", ("application",), LOCKS),
    ("pgdoctor_deadlock_groups", "Groups of sessions waiting on each other", (), LOCKS),
    ("pgdoctor_lock_table_usage_ratio", "Entries of the shared lock table / its capacity (when pg_locks "
     "was read)", (), LOCKS),
    # slow-queries
    ("pgdoctor_statements_window_seconds", "The time the statement figures cover: --interval, else since "
     "the statistics were reset", (), SLOW),
    ("pgdoctor_statements_exec_time_seconds", "Execution time of all top-level statements in the window",
     (), SLOW),
    ("pgdoctor_statements_entries", "Statements pg_stat_statements holds", (), SLOW),
    ("pgdoctor_statements_max_entries", "pg_stat_statements.max", (), SLOW),
    ("pgdoctor_statement_time_share_ratio", "A top statement's share of all top-level statement time",
     ("queryid", "database", "user"), SLOW),
    ("pgdoctor_statement_time_seconds", "A top statement's execution time in the window",
     ("queryid", "database", "user"), SLOW),
    ("pgdoctor_statement_calls", "A top statement's calls in the window", ("queryid", "database", "user"),
     SLOW),
    ("pgdoctor_statement_mean_seconds", "A top statement's mean execution time per call",
     ("queryid", "database", "user"), SLOW),
    ("pgdoctor_running_statements", "Statements running now for at least --running-min",
     ("application",), SLOW),
    ("pgdoctor_running_statement_longest_seconds", "The application's longest running statement",
     ("application",), SLOW),
    # pgbouncer
    ("pgdoctor_pgbouncer_pool_clients", "A pool's clients: active (cl_active), waiting (cl_waiting)",
     (*POOL, "state"), PGBOUNCER),
    ("pgdoctor_pgbouncer_pool_servers", "A pool's server connections: sv_active, sv_idle, sv_used, "
     "sv_tested, sv_login", (*POOL, "state"), PGBOUNCER),
    ("pgdoctor_pgbouncer_pool_maxwait_seconds", "How long the pool's oldest waiting client has waited",
     POOL, PGBOUNCER),
    ("pgdoctor_pgbouncer_pool_size", "The pool's pool_size", POOL, PGBOUNCER),
    ("pgdoctor_pgbouncer_application_clients", "Clients by application_name and state (active, waiting, "
     "other)", ("application", "state"), PGBOUNCER),
    ("pgdoctor_pgbouncer_clients", "Client connections to PgBouncer", (), PGBOUNCER),
    ("pgdoctor_pgbouncer_max_client_conn", "max_client_conn", (), PGBOUNCER),
)  # fmt: skip


@dataclass
class Family:
    """One metric's samples: label values (in the order of its Spec's labels) -> value. A label set
    added twice keeps its first value, so an exposition never repeats a series."""

    name: str
    samples: dict[tuple[str, ...], float] = field(default_factory=dict)

    @property
    def spec(self) -> Spec:
        return METRICS[self.name]

    def add(self, value: float | None, *labels: str | None) -> Family:
        if len(labels) != len(self.spec.labels):
            raise ValueError(f"{self.name} takes labels {self.spec.labels}, not {labels}")
        if value is not None and not math.isnan(value):
            self.samples.setdefault(tuple(label or "" for label in labels), float(value))
        return self


def family(name: str, value: float | None = None) -> Family:
    """A metric of METRICS (a KeyError for an undeclared one); with `value`, its one unlabelled sample."""
    if name not in METRICS:
        raise KeyError(f"{name} is not declared in METRICS")
    f = Family(name)
    return f.add(value) if value is not None else f


def union(families: Iterable[Family]) -> list[Family]:
    """The families merged by name (first value of a repeated series wins), in first-seen order: for a
    command that reports what several commands measure (triage)."""
    out: dict[str, Family] = {}
    for f in families:
        merged = out.setdefault(f.name, Family(f.name))
        for labels, value in f.samples.items():
            merged.samples.setdefault(labels, value)
    return list(out.values())


def finding_family(command: str, findings: Sequence[Finding]) -> Family:
    f = family("pgdoctor_finding")
    for x in findings:
        f.add(1, command, x.code, x.severity.value, x.subject)
    return f


def exposition(
    command: str,
    families: Iterable[Family],
    findings: Sequence[Finding],
    *,
    up: bool = True,
    server_version: str | None = None,
) -> str:
    """The OpenMetrics text of one run: pgdoctor_up, pgdoctor_info, the findings, then `families`."""
    head = [
        family("pgdoctor_up").add(1 if up else 0, command),
        family("pgdoctor_info").add(1, command, __version__, server_version or ""),
        finding_family(command, findings),
    ]
    return _text(union([*head, *families]))


def down(command: str) -> str:
    """What --format openmetrics writes when the command failed (its error is on stderr): pgdoctor_up 0,
    so a textfile collector shows the failure instead of the last good file."""
    return _text(
        [family("pgdoctor_up").add(0, command), family("pgdoctor_info").add(1, command, __version__, "")]
    )


def _text(families: list[Family]) -> str:
    from prometheus_client.core import GaugeMetricFamily, Metric
    from prometheus_client.openmetrics.exposition import generate_latest
    from prometheus_client.registry import CollectorRegistry

    gauges: list[Metric] = []
    for f in families:
        spec = f.spec
        g = GaugeMetricFamily(f.name, spec.help, labels=spec.labels, unit=spec.unit)
        for labels, value in f.samples.items():
            g.add_metric(labels, value)
        gauges.append(g)

    class Report:
        def collect(self) -> list[Metric]:
            return gauges

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Report())
    text: str = generate_latest(registry).decode()  # type: ignore[no-untyped-call]
    if not text.endswith("# EOF\n"):  # the end marker a reader uses to tell a whole exposition from a cut
        raise RuntimeError("prometheus_client wrote no '# EOF' line")
    return text
