"""`pgdoctor record`: one tick of a recording, from what `connections` reads (and PgBouncer's pools).

A tick is compact: counts per application and class, the capacity, lock waits, the oldest
idle-in-transaction and transaction ages, the findings of the `connections` analysis present at that
moment (code, subject, severity; the message only when a finding is new since the previous tick) and, with
PgBouncer, per pool the clients active and waiting and the longest wait. No per-session row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pgdoctor.analyze.connections import ConnectionsReport, analyze
from pgdoctor.analyze.findings import Finding, sort_findings
from pgdoctor.analyze.pool_hint import likely_saturated
from pgdoctor.collect.connections import ConnectionsData
from pgdoctor.collect.pgbouncer import PoolRow

# The classes a tick counts per application (`analyze.sessions.CLASSES`); only non-zero counts are kept.
BLOCKED = "blocked"
IDLE_IN_XACT = ("idle_in_transaction", "idle_in_transaction_aborted")
CONSOLE_DATABASE = "pgbouncer"  # PgBouncer's admin console: its own pseudo-pool, left out


@dataclass(frozen=True)
class PoolSample:
    """One PgBouncer pool at a tick (SHOW POOLS)."""

    database: str
    user: str
    cl_active: int
    cl_waiting: int
    sv_active: int
    sv_idle: int
    maxwait_s: float


@dataclass(frozen=True)
class Tick:
    """One line of a recording: the server's connections at time `t` (seconds since the epoch)."""

    t: float
    used: int = 0  # client backends, pgdoctor's own excluded
    usable: int = 0  # ordinary slots: max_connections minus the reserved ones
    max_connections: int = 0
    apps: dict[str, dict[str, int]] = field(default_factory=dict)  # application -> class -> sessions
    background: int = 0  # autovacuum, WAL senders, workers
    blocked: int = 0  # sessions waiting on a heavyweight lock
    blockers: int = 0  # sessions that others wait on
    oldest_idle_in_transaction_s: float | None = None
    oldest_xact_s: float | None = None
    # the findings present: [severity, code, subject]
    findings: list[list[str]] = field(default_factory=list)
    # "code subject" -> message, for the findings not present (or less severe) at the previous tick
    messages: dict[str, str] = field(default_factory=dict)
    pools: list[PoolSample] | None = None  # None: no --pgbouncer-dsn
    error: str | None = None  # the server's read failed at this tick (nothing else is set)
    pgbouncer_error: str | None = None  # PgBouncer's read failed at this tick


def finding_key(code: str, subject: str) -> str:
    return f"{code} {subject}"


def pool_samples(pools: list[PoolRow]) -> list[PoolSample]:
    return [
        PoolSample(
            database=p.database,
            user=p.user,
            cl_active=p.cl_active,
            cl_waiting=p.cl_waiting,
            sv_active=p.sv_active,
            sv_idle=p.sv_idle,
            maxwait_s=round(p.maxwait_s, 3),
        )
        for p in sorted(pools, key=lambda p: (p.database, p.user))
        if p.database != CONSOLE_DATABASE
    ]


def findings_of(data: ConnectionsData, thresholds: dict[str, Any]) -> tuple[ConnectionsReport, list[Finding]]:
    """The `connections` analysis of one read, with its likely-saturated-pool hint, as the command runs it."""
    report = analyze(data, by="application", **thresholds)
    return report, sort_findings(report.findings + likely_saturated(report))


def _age(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def tick_of(
    data: ConnectionsData,
    at: float,
    thresholds: dict[str, Any],
    previous: dict[str, str] | None = None,
    pools: list[PoolRow] | None = None,
) -> Tick:
    """One tick from one read. `previous`: the severities by finding key at the tick before (its
    messages are left out); pass the new tick's `severities(tick)` to the next call."""
    report, findings = findings_of(data, thresholds)
    apps: dict[str, dict[str, int]] = {}
    for g in sorted(report.groups, key=lambda g: g.key):
        apps[g.key] = {cls: n for cls, n in g.counts.items() if n}
    idle_xact = [
        s.state_age_s for s in report.sessions if s.cls in IDLE_IN_XACT and s.state_age_s is not None
    ]
    xacts = [s.xact_age_s for s in report.sessions if s.xact_age_s is not None]
    blockers = {pid for s in report.sessions for pid in s.blocked_by}
    seen = previous or {}
    messages = {
        finding_key(f.code, f.subject): f.message
        for f in findings
        if seen.get(finding_key(f.code, f.subject)) != f.severity.value
    }
    return Tick(
        t=round(at, 3),
        used=report.capacity.clients,
        usable=report.capacity.usable,
        max_connections=report.capacity.max_connections,
        apps=apps,
        background=len(report.background),
        blocked=sum(1 for s in report.sessions if s.cls == BLOCKED),
        blockers=len(blockers),
        oldest_idle_in_transaction_s=_age(max(idle_xact, default=None)),
        oldest_xact_s=_age(max(xacts, default=None)),
        findings=[[f.severity.value, f.code, f.subject] for f in findings],
        messages=messages,
        pools=pool_samples(pools) if pools is not None else None,
    )


def severities(tick: Tick) -> dict[str, str]:
    """The findings present at a tick: key -> severity (what `tick_of` compares the next tick against)."""
    return {finding_key(code, subject): sev for sev, code, subject in tick.findings}


@dataclass(frozen=True)
class ServerId:
    """Which server a recording is of: appending to a recording checks it."""

    version: str
    version_num: int
    system_identifier: str | None  # pg_control_system(); None when this role may not read it
    address: str  # host:port (or the socket directory) pgdoctor connected to, passwords never included
    database: str
    current_user: str

    def same_as(self, other: ServerId) -> bool:
        if self.system_identifier and other.system_identifier:
            return self.system_identifier == other.system_identifier
        return self.address == other.address


@dataclass(frozen=True)
class Header:
    """The first line of a recording (and, as a `resume` line, of each later run appending to it)."""

    version: int  # the recording format's version
    pgdoctor: str
    started: float  # seconds since the epoch
    every_s: float
    server: ServerId
    thresholds: dict[str, float] = field(default_factory=dict)
    pgbouncer: str | None = None  # PgBouncer's version, with --pgbouncer-dsn


@dataclass(frozen=True)
class Recording:
    """A recording as read back: its header, the later runs appended to it, the ticks in order, and what
    the reader skipped (a partial last line, a line cut by a kill)."""

    header: Header
    resumed: list[Header]
    ticks: list[Tick]
    notes: list[str]
