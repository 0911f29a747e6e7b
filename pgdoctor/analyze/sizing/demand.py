"""What the applications demonstrably use at once, for `recommend`'s pools.

From one read of pg_stat_activity: the connections each application holds per client address, without
those `connections` reports as leaked (`idle_connections`) or stuck (`idle_in_transaction`): they are
not demand. From a sample (`--sample`): Little's law per application, connections needed = transactions
per second x transaction time (L = lambda x W), with HEADROOM for bursts; and the same with the
idle-in-transaction time taken out, what fixing the application buys. Connections held idle and unused
(`app_connections_held`) are not demand either.

The findings are `connections`' own (the same functions on the same data), so the two commands agree.
Where the topology (processes per client address) is unknown it is read from the pool ceilings the
sample analysis knows (45 from one address = 3 processes x SQLAlchemy's 15), else one process per client
address holding them all, and said so: a pool is never sized below what was seen.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from pgdoctor.analyze import thresholds as t
from pgdoctor.analyze.connections import ConnectionsReport, analyze
from pgdoctor.analyze.findings import Finding, Severity
from pgdoctor.analyze.pool_hint import likely_saturated
from pgdoctor.analyze.sample import HEADROOM, KNOWN_POOLS, SampleGroup, SampleReport
from pgdoctor.analyze.sizing.pools import AppSpec
from pgdoctor.collect.connections import ConnectionsData

# `connections`' findings about who holds the connections: recommend repeats them as they are.
CONNECTION_CODES = ("capacity", "idle_in_transaction", "idle_connections", "app_pool_saturated_likely")
# ... and those whose sessions are not demand (leaked idle connections, stuck idle transactions).
NOT_DEMAND_CODES = ("idle_in_transaction", "idle_connections")
HELD_CODE = "app_connections_held"  # a sample's connections kept open and unused


@dataclass(frozen=True)
class AppDemand:
    name: str  # application_name, "(none)" when unset
    clients: int  # client addresses it connects from
    seen: int  # connections seen at the read, or the most held at once in the sample, summed per address
    not_demand: int  # of which leaked, stuck idle in transaction, or held idle and unused
    peak: int  # connections in use at once that count as demand (seen - not_demand)
    processes: int  # processes assumed or given
    topology: str  # how the processes were read
    needed: int  # connections needed at once: max(peak, ceil(busy x HEADROOM)), at least 1
    xacts_per_s: float | None = None  # from a sample: transactions per second (lambda)
    xact_s: float | None = None  # mean transaction time (W)
    idle_share: float | None = None  # of the transactions' time, idle in transaction
    busy: float | None = None  # L = lambda x W: connections in a transaction on average
    busy_fixed: float | None = None  # L with the idle-in-transaction time taken out
    needed_fixed: int | None = None  # ceil(busy_fixed x HEADROOM), at least 1

    @property
    def per_process(self) -> int:
        return max(math.ceil(self.needed / self.processes), 1)

    def spec(self, kind: str = "threads") -> AppSpec:
        return AppSpec(self.name, self.processes, self.per_process, observed=True, kind=kind)


@dataclass(frozen=True)
class Demand:
    source: str  # "observed" (one read of pg_stat_activity) or "sample"
    window_s: float | None  # the sample's length
    apps: list[AppDemand]
    findings: list[Finding] = field(default_factory=list)
    # a sample's connections busy in transactions per database, and without the idle time in them: what
    # a transaction-mode PgBouncer pool (one per database and user) holds
    database_busy: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def busiest(self) -> str | None:
        """The database whose pool needs the most server connections."""
        if not self.database_busy:
            return None
        return max(sorted(self.database_busy), key=lambda d: self.database_busy[d][0])

    @property
    def server_busy(self) -> float | None:
        """Server connections busy in transactions on average in the busiest database."""
        db = self.busiest
        return None if db is None else round(self.database_busy[db][0], 2)

    @property
    def server_needed(self) -> int | None:
        busy = self.server_busy
        return None if busy is None else max(math.ceil(round(busy * HEADROOM, 6)), 1)

    @property
    def server_needed_fixed(self) -> int | None:
        if not self.database_busy:
            return None
        fixed = max(b for _, b in self.database_busy.values())
        return max(math.ceil(round(fixed * HEADROOM, 6)), 1)

    @property
    def not_demand(self) -> int:
        return sum(a.not_demand for a in self.apps)


def connections_report(data: ConnectionsData) -> ConnectionsReport:
    """`pgdoctor connections`' analysis with its default thresholds, the one-read pool hint included."""
    from dataclasses import replace

    from pgdoctor.analyze.findings import sort_findings

    report = analyze(
        data,
        capacity_warn_pct=t.CAPACITY_WARN_PCT,
        capacity_crit_pct=t.CAPACITY_CRIT_PCT,
        idle_xact_warn_s=t.IDLE_XACT_WARN_S,
        idle_xact_crit_s=t.IDLE_XACT_CRIT_S,
        leak_min_idle=t.LEAK_MIN_IDLE,
        leak_share_pct=t.LEAK_SHARE_PCT,
        leak_idle_s=t.LEAK_IDLE_S,
        blocked_crit_s=t.BLOCKED_CRIT_S,
        xmin_warn_s=t.XMIN_WARN_S,
        xmin_crit_age=t.XMIN_CRIT_AGE,
    )
    return replace(report, findings=sort_findings(report.findings + likely_saturated(report)))


def topology(per_address: dict[str, int]) -> tuple[int, int, str]:
    """(processes, connections per process, how read) from the connections held per client address."""
    processes, per_process, parts = 0, 1, []
    for client, n in sorted(per_address.items()):
        match = next((size for size, _ in KNOWN_POOLS if n >= size and n % size == 0), None)
        if match is not None:
            name = next(label for size, label in KNOWN_POOLS if size == match)
            processes += n // match
            per_process = max(per_process, match)
            parts.append(f"{n} from {client} read as {n // match} process(es) x {match} ({name})")
        else:
            processes += 1
            per_process = max(per_process, n)
            parts.append(f"{n} from {client} read as 1 process")
    return max(processes, 1), per_process, "; ".join(parts) or "none in use"


def from_activity(data: ConnectionsData) -> Demand:
    """One read: per application, the connections per client address, leaks and stuck ones left out."""
    report = connections_report(data)
    findings = [f for f in report.findings if f.code in CONNECTION_CODES]
    left_out = {pid for f in findings if f.code in NOT_DEMAND_CODES for pid in f.pids}
    per_app: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    out_app: dict[str, int] = defaultdict(int)
    for s in report.sessions:
        name = s.application_name or "(none)"
        if s.pid in left_out:
            out_app[name] += 1
            per_app[name].setdefault(s.client, 0)
        else:
            per_app[name][s.client] += 1
    apps = []
    for name, per_address in per_app.items():
        processes, _, how = topology({c: n for c, n in per_address.items() if n})
        peak = sum(per_address.values())
        apps.append(
            AppDemand(
                name=name,
                clients=len(per_address),
                seen=peak + out_app[name],
                not_demand=out_app[name],
                peak=peak,
                processes=processes,
                topology=how,
                needed=max(peak, 1),
            )
        )
    apps.sort(key=lambda a: (-a.needed, a.name))
    return Demand("observed", None, apps, findings)


def _little(g: SampleGroup) -> tuple[float, float]:
    """(L, L without idle in transaction) of one group: lambda x W, or the busy connections measured."""
    x = g.xacts
    busy = max(x.per_s * x.mean_s if x.mean_s else 0.0, g.busy_mean)
    return busy, busy * (1 - (x.idle_share or 0.0))


def from_sample(sample: SampleReport, data: ConnectionsData | None) -> Demand:
    """A sample: per application, Little's law with HEADROOM, never below what was held and used."""
    findings = list(sample.findings)
    if data is not None:
        findings += [f for f in connections_report(data).findings if f.code in CONNECTION_CODES]
    held = {f.subject for f in sample.findings if f.code == HELD_CODE}
    groups: dict[str, list[SampleGroup]] = defaultdict(list)
    for g in sample.groups:
        groups[g.application or "(none)"].append(g)
    apps = []
    database_busy: dict[str, tuple[float, float]] = {}
    for g in sample.groups:
        b, bf = _little(g)
        for db in g.databases:
            was = database_busy.get(db, (0.0, 0.0))
            database_busy[db] = (was[0] + b / len(g.databases), was[1] + bf / len(g.databases))
    for name, members in groups.items():
        busy = busy_fixed = rate = time_sum = idle_time = 0.0
        per_address: dict[str, int] = defaultdict(int)
        seen = not_demand = 0
        for g in members:
            b, bf = _little(g)
            busy, busy_fixed = busy + b, busy_fixed + bf
            rate += g.xacts.per_s
            if g.xacts.mean_s:
                time_sum += g.xacts.per_s * g.xacts.mean_s
                idle_time += g.xacts.per_s * g.xacts.mean_s * (g.xacts.idle_share or 0.0)
            seen += g.held_max
            used = math.ceil(b) if g.label in held else g.held_max
            not_demand += g.held_max - used
            per_address[g.client] += used
        peak = sum(per_address.values())
        processes, _, how = topology({c: n for c, n in per_address.items() if n})
        apps.append(
            AppDemand(
                name=name,
                clients=len(per_address),
                seen=seen,
                not_demand=not_demand,
                peak=peak,
                processes=processes,
                topology=how,
                needed=max(peak, math.ceil(round(busy * HEADROOM, 6)), 1),
                xacts_per_s=round(rate, 2),
                xact_s=round(time_sum / rate, 3) if rate and time_sum else None,
                idle_share=round(idle_time / time_sum, 4) if time_sum else None,
                busy=round(busy, 2),
                busy_fixed=round(busy_fixed, 2),
                needed_fixed=max(math.ceil(round(busy_fixed * HEADROOM, 6)), 1),
            )
        )
    apps.sort(key=lambda a: (-a.needed, a.name))
    return Demand("sample", sample.window_s, apps, findings, database_busy)


def apply(given: list[AppSpec], demand: Demand | None) -> tuple[list[AppSpec], list[Finding]]:
    """The applications to size, with a finding for each given one raised to what it was seen using.

    Given (--app): as given, but never below the connections per process it was seen using at once; an
    async application's tasks capped by its measured need (tasks wait for a connection without holding a
    thread). Not given: the demand's, each as observed."""
    if not given:
        return ([a.spec() for a in demand.apps] if demand is not None else []), []
    if demand is None:
        return given, []
    by_name = {a.name: a for a in demand.apps}
    out, findings = [], []
    for spec in given:
        d = by_name.get(spec.name)
        if d is None:
            out.append(spec)
            continue
        threads = spec.threads
        if spec.kind == "async" and demand.source == "sample":
            threads = min(threads, max(math.ceil(d.needed / spec.processes), 1))
        floor = math.ceil(d.peak / spec.processes)
        if floor > threads:
            findings.append(
                Finding(
                    Severity.WARNING,
                    "app_uses_more",
                    spec.name,
                    f"--app {spec.name}={spec.processes}x{spec.threads} allows "
                    f"{spec.processes * spec.threads} connections at once, but {d.peak} were in use at once "
                    f"({d.topology}): sized for {floor} per process instead",
                    "check the topology: processes (or replicas) x threads or tasks that use the database at "
                    "once, per process",
                )
            )
            threads = floor
        out.append(AppSpec(spec.name, spec.processes, threads, kind=spec.kind))
    return out, findings
