"""`--watch`: what changed between the ticks of a live watch, as pure functions of the commands' reports.

Each tick of `connections`, `locks` or `pgbouncer --watch` is the command's own analysis of a fresh read;
a `Picture` keeps of it only what a watch compares (headline totals, a count per application, root
blocker or pool, the members of a set such as the root blockers, the findings), and `compare` tells what
changed since the previous tick and since the first one: slots taken or freed per application, blockers
that appeared or ended, clients waiting per pool, findings raised or cleared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pgdoctor.analyze.connections import ConnectionsReport
from pgdoctor.analyze.findings import Finding
from pgdoctor.analyze.locks import LocksReport
from pgdoctor.analyze.pgbouncer import PgBouncerReport


@dataclass(frozen=True)
class Picture:
    """One tick, reduced to what the watch compares."""

    command: str
    at: float  # seconds since the epoch, when the tick was read
    totals: dict[str, int]  # headline numbers, in display order (connections: used, usable)
    counts_of: str  # what `counts` are counted by: "application", "root blocker", "pool" …
    counts: dict[str, int]  # per key: sessions of an application, sessions behind a blocker, clients waiting
    members: dict[str, str] = field(
        default_factory=dict
    )  # a set whose comings and goings matter: key -> label
    findings: dict[str, str] = field(default_factory=dict)  # "code [subject]" -> severity


@dataclass(frozen=True)
class Change:
    """A number now, and how much it moved since the previous tick and since the first."""

    key: str
    now: int
    since_last: int
    since_start: int


@dataclass(frozen=True)
class Member:
    key: str
    label: str


@dataclass(frozen=True)
class Delta:
    """What changed at tick `tick` (1 is the first tick: nothing changed yet)."""

    tick: int
    at: float
    elapsed_s: float  # since the first tick
    totals: list[Change]
    counts: list[Change]  # keys present now or that moved since the start; the biggest moves first
    appeared: list[Member]  # members new since the previous tick
    ended: list[Member]  # members of the previous tick that are gone
    appeared_since_start: list[Member]
    ended_since_start: list[Member]
    findings_raised: list[str]  # "code [subject]", new since the previous tick
    findings_cleared: list[str]

    @property
    def changed(self) -> bool:
        """Anything moved since the previous tick."""
        return bool(
            any(c.since_last for c in self.totals)
            or any(c.since_last for c in self.counts)
            or self.appeared
            or self.ended
            or self.findings_raised
            or self.findings_cleared
        )


def finding_key(f: Finding) -> str:
    return f"{f.code} [{f.subject}]"


def _findings(findings: list[Finding]) -> dict[str, str]:
    return {finding_key(f): f.severity.value for f in findings}


def connections_picture(report: ConnectionsReport, at: float) -> Picture:
    """Slots in use against the usable ones, and the sessions of each group (application by default)."""
    cap = report.capacity
    return Picture(
        command="connections",
        at=at,
        totals={"used": cap.clients, "usable": cap.usable},
        counts_of=report.by,
        counts={g.key: g.total for g in report.groups},
        findings=_findings(report.findings),
    )


def locks_picture(report: LocksReport, at: float) -> Picture:
    """Sessions waiting on a lock, the root blockers and how many sessions each holds up."""
    members = {}
    counts = {}
    for r in report.roots:
        key = f"pid {r.pid}" if r.pid else "prepared transaction"
        who = ", ".join(x for x in (r.application_name or "", r.state or "", r.kind) if x and x != "session")
        members[key] = f"{key} ({who})" if who else key
        counts[key] = r.blocks_total
    return Picture(
        command="locks",
        at=at,
        totals={"waiting": len(report.waiter_index), "blockers": len(report.roots)},
        counts_of="root blocker",
        counts=counts,
        members=members,
        findings=_findings(report.findings),
    )


def pgbouncer_picture(report: PgBouncerReport, at: float) -> Picture:
    """Clients waiting for a server connection, per pool and in all; pools and clients in all."""
    return Picture(
        command="pgbouncer",
        at=at,
        totals={
            "clients_waiting": sum(p.cl_waiting for p in report.pools),
            "clients": report.clients_total,
            "servers": sum(p.servers for p in report.pools),
        },
        counts_of="pool",
        counts={p.name: p.cl_waiting for p in report.pools},
        members={p.name: p.name for p in report.pools},
        findings=_findings(report.findings),
    )


def _change(key: str, start: Mapping[str, int], prev: Mapping[str, int], now: Mapping[str, int]) -> Change:
    n = now.get(key, 0)
    return Change(key, n, n - prev.get(key, 0), n - start.get(key, 0))


def _members(keys: Mapping[str, str], leave_out: Mapping[str, str]) -> list[Member]:
    """The members of `keys` (key -> label) that are not in `leave_out`."""
    return [Member(k, label) for k, label in keys.items() if k not in leave_out]


def compare(start: Picture, prev: Picture, now: Picture, tick: int) -> Delta:
    """What changed at `now` since `prev` (the previous tick) and since `start` (the first)."""
    keys = dict.fromkeys([*now.counts, *prev.counts, *start.counts])
    counts = [_change(k, start.counts, prev.counts, now.counts) for k in keys]
    counts = [c for c in counts if c.now or c.since_last or c.since_start]
    counts.sort(key=lambda c: (-abs(c.since_last), -abs(c.since_start), -c.now, c.key))
    return Delta(
        tick=tick,
        at=now.at,
        elapsed_s=max(now.at - start.at, 0.0),
        totals=[_change(k, start.totals, prev.totals, now.totals) for k in now.totals],
        counts=counts,
        appeared=_members(now.members, prev.members),
        ended=_members(prev.members, now.members),
        appeared_since_start=_members(now.members, start.members),
        ended_since_start=_members(start.members, now.members),
        findings_raised=[k for k in now.findings if k not in prev.findings],
        findings_cleared=[k for k in prev.findings if k not in now.findings],
    )


class Watch:
    """The running comparison: feed it each tick's picture, get what changed."""

    def __init__(self) -> None:
        self.start: Picture | None = None
        self.prev: Picture | None = None
        self.ticks = 0

    def add(self, picture: Picture) -> Delta:
        self.ticks += 1
        start = self.start or picture
        prev = self.prev or picture
        delta = compare(start, prev, picture, self.ticks)
        self.start = start
        self.prev = picture
        return delta
