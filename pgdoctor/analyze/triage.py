"""`pgdoctor triage`: every diagnosis of one read, its findings merged into problems and ranked.

The analyses run unchanged on the one read (`collect.triage`), each with its command's default
thresholds: connections, locks, slow-queries, and PgBouncer when read. Their findings are then merged so
that one cause is one problem, and ranked (`pgdoctor.analyze.problems`). Info findings are notes, not
problems; pg_stat_statements that cannot be read is a note too (triage is the check cron runs: a server
without the extension is not an incident).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pgdoctor.analyze.connections import ConnectionsReport
from pgdoctor.analyze.findings import Finding, Severity
from pgdoctor.analyze.locks import LocksReport
from pgdoctor.analyze.problems import (
    CONNECTIONS,
    LOCKS,
    PGBOUNCER,
    SLOW_QUERIES,
    Problem,
    Sourced,
    as_triage_note,
    problems_of,
)
from pgdoctor.analyze.slow_queries import SlowQueriesReport
from pgdoctor.collect.server import ServerInfo
from pgdoctor.collect.triage import LIMIT, SORT, TriageData

if TYPE_CHECKING:
    from pgdoctor.analyze.pgbouncer import PgBouncerReport


@dataclass(frozen=True)
class TriageReport:
    server: ServerInfo
    connections: ConnectionsReport
    locks: LocksReport
    slow_queries: SlowQueriesReport
    pgbouncer: PgBouncerReport | None
    findings: list[Sourced]  # every command's findings, in the commands' order
    problems: list[Problem]  # ranked: the first is what to do first
    pgbouncer_error: str | None = None  # --pgbouncer-dsn given, its console not read: why

    @property
    def notes(self) -> list[Sourced]:
        """The info findings: part of no problem."""
        return [s for s in self.findings if s.finding.severity is Severity.INFO]

    @property
    def every_finding(self) -> list[Finding]:
        return [s.finding for s in self.findings]


def pgbouncer_unreachable(error: str) -> Finding:
    """PgBouncer's console could not be read: mid-incident, maybe the pooler is the part that is down."""
    return Finding(
        Severity.CRITICAL,
        "pgbouncer_unreachable",
        "pgbouncer",
        f"PgBouncer's admin console could not be read ({error}); the PostgreSQL side above is complete",
        "check that PgBouncer runs and accepts connections (a full max_client_conn refuses the console "
        "too: 'no more connections allowed'); then `pgdoctor pgbouncer -d ...` for its pools",
    )


def analyze(data: TriageData) -> TriageReport:
    """Run every analysis on the one read, with each command's default thresholds, and rank."""
    from pgdoctor.analyze import connections, locks, slow_queries
    from pgdoctor.analyze.findings import sort_findings
    from pgdoctor.analyze.pool_hint import likely_saturated

    pgbouncer_report = None
    via = None
    if data.pgbouncer is not None:
        from pgdoctor.analyze.pgbouncer import analyze as analyze_pgbouncer
        from pgdoctor.analyze.pgbouncer_rows import via_map

        pgbouncer_report = analyze_pgbouncer(data.pgbouncer)
        via = via_map(data.pgbouncer)
    conn = connections.analyze(data.connections, via=via)
    conn = replace(conn, findings=sort_findings(conn.findings + likely_saturated(conn)))
    lock_report = locks.analyze(data.locks)
    slow = slow_queries.analyze(data.statements, sort=SORT, limit=LIMIT)
    sourced = [
        *(Sourced(CONNECTIONS, f) for f in conn.findings),
        *(Sourced(LOCKS, f) for f in lock_report.findings),
        *(as_triage_note(Sourced(SLOW_QUERIES, f)) for f in slow.findings),
        *(Sourced(PGBOUNCER, f) for f in (pgbouncer_report.findings if pgbouncer_report else [])),
    ]
    if data.pgbouncer_error is not None:
        sourced.append(Sourced(PGBOUNCER, pgbouncer_unreachable(data.pgbouncer_error)))
    return TriageReport(
        server=data.connections.server,
        connections=conn,
        locks=lock_report,
        slow_queries=slow,
        pgbouncer=pgbouncer_report,
        findings=sourced,
        problems=problems_of(sourced, lock_report, pgbouncer_report),
        pgbouncer_error=data.pgbouncer_error,
    )
