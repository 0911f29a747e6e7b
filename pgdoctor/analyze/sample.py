"""`connections --sample`: what a few seconds of pg_stat_activity show about each application's pool.

Incremental: `SampleAnalysis.add` takes one tick's changes (pgdoctor/collect/sample.py) and updates
running sums (time per class, time at each connection count, transactions ended); `finish` turns them
into the report. Nothing is re-read at the end, so a long sample costs memory per session, not per tick.

A unit is what one pool looks like from the server: an application (application_name) at one client
address; sessions without an application_name are told apart by client address and user instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from pgdoctor.analyze.findings import Finding, Severity, sort_findings
from pgdoctor.analyze.format import duration
from pgdoctor.collect.sample import SampleData, SessionSeen, StateSeen, Tick
from pgdoctor.collect.server import ServerInfo

SAMPLE_CLASSES = ("active", "idle_in_transaction", "idle", "blocked", "other")
BUSY = ("active", "idle_in_transaction", "blocked", "other")

# A plateau: the unit held its largest count of connections for at least this share of the sample. A
# pool at its ceiling stays there; a pool with room moves with the load.
PLATEAU_SHARE = 0.8
# "(Almost) never idle": at most this share of the unit's session time idle. A pooled connection that is
# returned waits idle for the next request; a pool whose requests queue hands it on at once.
SATURATED_IDLE_SHARE = 0.05
# A pool smaller than this is not reported as saturated: SQLAlchemy's default pool_size. A handful of
# busy connections is as likely a handful of worker threads, each holding its one connection, all busy.
SATURATED_MIN_CONNECTIONS = 5
# slow_work_in_transaction: transactions idle in transaction for at least this share of their time,
# with a typical idle gap of at least SLOW_WORK_MIN_GAP_S (an ORM's own gaps between statements last
# milliseconds), in at least SLOW_WORK_MIN_XACTS transactions. Independent of --idle-xact-warn: a 2-10 s
# gap never reaches a minute, yet holds a connection, its locks and its snapshot for most of its time
# ("Client Connection Defaults: idle_in_transaction_session_timeout" in the PostgreSQL docs).
SLOW_WORK_IDLE_SHARE = 0.5
SLOW_WORK_MIN_GAP_S = 1.0
SLOW_WORK_MIN_XACTS = 2
# app_connections_held: a plateau of at least SATURATED_MIN_CONNECTIONS idle this share of the time or
# more, whose sessions changed state (ran a query, ended a transaction) fewer than HELD_MAX_CHANGES_PER_S
# times a second each: connections kept, not used (one per thread kept for good, or leaked), which are
# not demand. (A pool that is used shows a new state_change at almost every read, however short its
# transactions.)
HELD_IDLE_SHARE = 0.9
HELD_MAX_CHANGES_PER_S = 0.05
# Known pool ceilings per process, as they show from the server (largest first: 45 = 3 x 15).
KNOWN_POOLS = (
    (15, "SQLAlchemy's default pool (5 + 10)"),  # pool_size=5, max_overflow=10; Flask-SQLAlchemy's too
    (10, "asyncpg's default pool (max_size=10)"),
)
# Headroom on a pool sized from measured demand (Little's law gives the mean; bursts need more).
HEADROOM = 1.5


@dataclass(frozen=True)
class XactStats:
    ended: int  # transactions that ended during the sample
    open: int  # still open at its end
    per_s: float  # transactions ended per second: seen, or pg_stat_database's when the unit is alone there
    per_s_source: str  # "seen" or "pg_stat_database"
    p50_s: float | None
    p95_s: float | None
    max_s: float | None
    mean_s: float | None
    idle_share: float | None  # of the transactions' time (ended and open), the share idle in transaction
    typical_idle_gap_s: float | None  # median idle-in-transaction gap
    longest_idle_gap_s: float | None


@dataclass(frozen=True)
class SampleGroup:
    application: str  # "" when the sessions set none
    client: str  # client address, or "local socket"
    user: str | None  # set when the application is "" (told apart by user too)
    label: str
    databases: list[str]
    sessions_seen: int
    held_min: int
    held_max: int
    held_mean: float
    plateau_share: float  # share of the sample at held_max
    plateau: bool
    time_share: dict[str, float]  # class -> share of the unit's session time
    ever_idle: bool  # a connection of the unit was idle at some tick
    busy_mean: float  # connections in a transaction, on average: L of Little's law
    state_changes: int  # changes of state seen (each query and each transaction end shows as one)
    pool_match: str | None
    xacts: XactStats


@dataclass(frozen=True)
class SampleReport:
    server: ServerInfo
    window_s: float
    ticks: int
    interval_s: float
    duration_s: float
    interrupted: bool
    usable: int  # ordinary slots
    clients_max: int  # most client sessions at one tick
    xacts_per_s: dict[str, float]  # per database, pgdoctor's own reads taken off
    groups: list[SampleGroup]
    findings: list[Finding] = field(default_factory=list)


def classify(state: StateSeen) -> str:
    if state.blocked:
        return "blocked"
    if state.state == "active":
        return "active"
    if state.state in ("idle in transaction", "idle in transaction (aborted)"):
        return "idle_in_transaction"
    if state.state == "idle":
        return "idle"
    return "other"


class _Unit:
    __slots__ = (
        "changes",
        "class_time",
        "count",
        "count_since",
        "count_time",
        "databases",
        "durations",
        "gaps",
        "held_max",
        "held_min",
        "idle_now",
        "idle_ticks",
        "key",
        "open_xacts",
        "sessions",
        "xact_idle",
        "xact_time",
    )

    def __init__(self, key: tuple[str, str, str | None], since: float, counting: bool) -> None:
        self.key = key
        self.class_time = dict.fromkeys(SAMPLE_CLASSES, 0.0)
        self.count = 0
        self.held_min = 0 if counting else 1 << 30
        self.held_max = 0
        self.count_time: dict[int, float] = {}
        self.count_since = since
        self.idle_now = 0
        self.idle_ticks = 0
        self.sessions = 0
        self.databases: set[str] = set()
        self.durations: list[float] = []
        self.xact_time = 0.0  # time of transactions (ended and open), as far as seen
        self.xact_idle = 0.0  # of which idle in transaction
        self.gaps: list[float] = []
        self.open_xacts = 0
        self.changes = 0  # state changes seen after a session's first read (a new query, a commit …)

    def recount(self, at: float, delta: int, counting: bool) -> None:
        self.count_time[self.count] = self.count_time.get(self.count, 0.0) + max(at - self.count_since, 0)
        self.count_since = at
        self.count += delta
        if counting:
            self.held_min = min(self.held_min, self.count)
            self.held_max = max(self.held_max, self.count)


class _Session:
    __slots__ = ("cls", "since", "since_true", "state", "unit", "xact_idle", "xact_start")

    def __init__(self, unit: _Unit) -> None:
        self.unit = unit
        self.cls: str | None = None
        self.since = 0.0  # when the class began, within the sample
        self.since_true = 0.0  # when the state began (the server's state_change: before the sample too)
        self.state: str | None = None
        self.xact_start: float | None = None
        self.xact_idle = 0.0


def unit_key(s: SessionSeen) -> tuple[str, str, str | None]:
    client = s.client_addr or "local socket"
    return (s.application_name, client, None if s.application_name else (s.usename or ""))


def unit_label(key: tuple[str, str, str | None]) -> str:
    app, client, user = key
    if app:
        return f"{app} @ {client}"
    return f"(no application_name) {user or '?'} @ {client}"


class SampleAnalysis:
    """Running sums over a sample's ticks."""

    def __init__(self) -> None:
        self.units: dict[tuple[str, str, str | None], _Unit] = {}
        self.sessions: dict[int, _Session] = {}
        self.start: float | None = None
        self.last = 0.0
        self.ticks = 0
        self.clients_max = 0
        self.xact_readings: list[tuple[float, dict[str, int], int]] = []
        self.db_of: dict[int, str] = {}
        self.ended_total = 0

    # --- what the progress bar shows -------------------------------------------------------------
    def seen(self) -> str:
        busy = sum(1 for s in self.sessions.values() if s.cls not in (None, "idle"))
        return (
            f"{len(self.sessions)} sessions ({busy} busy) in {len(self.units)} groups, "
            f"{self.ended_total} transactions ended"
        )

    # --- one tick ---------------------------------------------------------------------------------
    def add(self, tick: Tick) -> None:
        first = self.start is None
        if self.start is None:
            self.start = tick.at
            self.last = tick.at
        t = tick.at
        prev = self.last
        mid = (prev + t) / 2
        for pid in tick.gone:
            self._end(pid, mid)
        for seen in tick.new:
            self._new(seen, t, mid, first)
        for state in tick.changed:
            session = self.sessions.get(state.pid)
            if session is not None:
                self._state(session, state, prev, t, first)
        if first:
            for unit in self.units.values():
                unit.held_min = min(unit.held_min, unit.count)
                unit.held_max = max(unit.held_max, unit.count)
        for unit in self.units.values():
            if unit.idle_now:
                unit.idle_ticks += 1
        self.clients_max = max(self.clients_max, len(self.sessions))
        if tick.xacts is not None:
            self.xact_readings.append((t, {x.datname: x.xacts for x in tick.xacts}, tick.own_xacts))
        self.last = t
        self.ticks += 1

    def _new(self, seen: SessionSeen, t: float, mid: float, first: bool) -> None:
        if seen.pid in self.sessions:  # the pid is reused: the old session ended
            self._end(seen.pid, mid)
        start = self.start if self.start is not None else t
        unit = self.units.get(key := unit_key(seen))
        if unit is None:
            unit = self.units[key] = _Unit(key, start, not first)
        unit.sessions += 1
        if seen.datname:
            unit.databases.add(seen.datname)
        unit.recount(start if first else t, +1, not first)
        self.sessions[seen.pid] = _Session(unit)

    def _state(self, s: _Session, st: StateSeen, prev: float, t: float, first: bool) -> None:
        cls = classify(st)
        if s.cls is None:  # first state of the session
            s.cls, s.state = cls, st.state
            s.since = t
            s.since_true = st.state_change if st.state_change is not None else t
            s.xact_start = st.xact_start
            if cls == "idle":
                s.unit.idle_now += 1
            return
        s.unit.changes += 1
        # when the change happened: the server's state_change when the state itself changed
        changed = st.state != s.state and st.state_change is not None
        at = min(max(st.state_change or t, prev), t) if changed else t
        self._close_class(s, at)
        if st.xact_start != s.xact_start:
            if s.xact_start is not None:
                if st.xact_start is not None:
                    end = min(max(st.xact_start, prev), t)
                elif cls == "idle" and st.state_change is not None:
                    end = min(max(st.state_change, prev), t)
                else:
                    end = at
                self._end_xact(s, end)
            s.xact_start = st.xact_start
            s.xact_idle = 0.0
        if cls == "idle" and s.cls != "idle":
            s.unit.idle_now += 1
        elif cls != "idle" and s.cls == "idle":
            s.unit.idle_now -= 1
        s.cls, s.state = cls, st.state
        s.since = at
        s.since_true = at if st.state_change is None else min(st.state_change, at)

    def _close_class(self, s: _Session, at: float) -> None:
        unit = s.unit
        if s.cls is None:
            return
        unit.class_time[s.cls] += max(at - s.since, 0.0)
        if s.cls == "idle_in_transaction":
            gap = max(at - max(s.since_true, s.xact_start or s.since_true), 0.0)
            unit.gaps.append(gap)
            s.xact_idle += gap

    def _end_xact(self, s: _Session, end: float) -> None:
        assert s.xact_start is not None
        took = max(end - s.xact_start, 0.0)
        unit = s.unit
        unit.durations.append(took)
        unit.xact_time += took
        unit.xact_idle += min(s.xact_idle, took)
        self.ended_total += 1

    def _end(self, pid: int, at: float) -> None:
        s = self.sessions.pop(pid, None)
        if s is None:
            return
        self._close_class(s, at)
        if s.xact_start is not None:
            self._end_xact(s, at)
        if s.cls == "idle":
            s.unit.idle_now -= 1
        s.unit.recount(at, -1, True)

    # --- the report -------------------------------------------------------------------------------
    def finish(self, data: SampleData) -> SampleReport:
        """The report as of the last tick (call once: it closes what is still open)."""
        start = self.start if self.start is not None else 0.0
        end = self.last
        window = max(end - start, 0.0)
        for s in self.sessions.values():
            unit = s.unit
            if s.cls is not None:
                unit.class_time[s.cls] += max(end - s.since, 0.0)
                if s.cls == "idle_in_transaction":
                    gap = max(end - max(s.since_true, s.xact_start or s.since_true), 0.0)
                    unit.gaps.append(gap)
                    s.xact_idle += gap
            if s.xact_start is not None:
                took = max(end - s.xact_start, 0.0)
                unit.xact_time += took
                unit.xact_idle += min(s.xact_idle, took)
                unit.open_xacts += 1
        for unit in self.units.values():
            unit.recount(end, 0, self.ticks > 1)
        db_rates = self._db_rates(data.database)
        units_per_db: dict[str, int] = {}
        for unit in self.units.values():
            for d in unit.databases:
                units_per_db[d] = units_per_db.get(d, 0) + 1
        groups = [
            self._group(unit, window, db_rates, units_per_db)
            for unit in sorted(self.units.values(), key=lambda u: (u.key[0] == "", u.key[0], u.key[1]))
        ]
        usable = max(
            data.server.int_setting("max_connections")
            - data.server.int_setting("superuser_reserved_connections")
            - data.server.int_setting("reserved_connections"),
            0,
        )
        report = SampleReport(
            server=data.server,
            window_s=window,
            ticks=self.ticks,
            interval_s=data.interval_s,
            duration_s=data.duration_s,
            interrupted=data.interrupted,
            usable=usable,
            clients_max=self.clients_max,
            xacts_per_s=db_rates,
            groups=groups,
        )
        return replace(report, findings=sort_findings(find(report)))

    def _db_rates(self, own_db: str) -> dict[str, float]:
        if len(self.xact_readings) < 2:
            return {}
        t0, first, own0 = self.xact_readings[0]
        t1, last, own1 = self.xact_readings[-1]
        if t1 - t0 <= 0:
            return {}
        rates = {}
        for name, count in sorted(last.items()):
            delta = count - first.get(name, count)
            if name == own_db:
                delta -= own1 - own0
            rates[name] = round(max(delta, 0) / (t1 - t0), 2)
        return rates

    def _group(
        self, unit: _Unit, window: float, db_rates: dict[str, float], units_per_db: dict[str, int]
    ) -> SampleGroup:
        total = sum(unit.class_time.values())
        shares = {c: (round(v / total, 4) if total else 0.0) for c, v in unit.class_time.items()}
        held_mean = sum(c * t for c, t in unit.count_time.items()) / window if window else float(unit.count)
        plateau_share = unit.count_time.get(unit.held_max, 0.0) / window if window else 1.0
        busy = sum(unit.class_time[c] for c in BUSY)
        durations = sorted(unit.durations)
        seen_rate = len(durations) / window if window else 0.0
        rate, source = seen_rate, "seen"
        alone = [d for d in unit.databases if units_per_db.get(d) == 1 and d in db_rates]
        if alone and len(alone) == len(unit.databases) and (busy > 0 or unit.changes > 0):
            db_rate = sum(db_rates[d] for d in alone)
            if db_rate >= seen_rate:
                rate, source = db_rate, "pg_stat_database"
        gaps = sorted(unit.gaps)
        xacts = XactStats(
            ended=len(durations),
            open=unit.open_xacts,
            per_s=round(rate, 2),
            per_s_source=source,
            p50_s=_pct(durations, 50),
            p95_s=_pct(durations, 95),
            max_s=durations[-1] if durations else None,
            mean_s=sum(durations) / len(durations) if durations else None,
            idle_share=round(unit.xact_idle / unit.xact_time, 4) if unit.xact_time > 0 else None,
            typical_idle_gap_s=_pct(gaps, 50),
            longest_idle_gap_s=gaps[-1] if gaps else None,
        )
        held_max = unit.held_max if unit.held_max >= 0 else 0
        app, client, user = unit.key
        return SampleGroup(
            application=app,
            client=client,
            user=user,
            label=unit_label(unit.key),
            databases=sorted(unit.databases),
            sessions_seen=unit.sessions,
            held_min=min(unit.held_min, held_max),
            held_max=held_max,
            held_mean=round(held_mean, 2),
            plateau_share=round(plateau_share, 4),
            plateau=held_max >= 2 and plateau_share >= PLATEAU_SHARE,
            time_share=shares,
            ever_idle=unit.idle_ticks > 0,
            busy_mean=round(busy / window, 2) if window else 0.0,
            state_changes=unit.changes,
            pool_match=pool_match(held_max),
            xacts=xacts,
        )


def _pct(sorted_values: list[float], pct: float) -> float | None:
    """The nearest-rank percentile of sorted values; None when there are none."""
    if not sorted_values:
        return None
    rank = max(math.ceil(pct / 100 * len(sorted_values)), 1)
    return sorted_values[rank - 1]


def pool_match(held: int) -> str | None:
    """Which default pool a plateau of `held` connections from one client address matches."""
    for size, name in KNOWN_POOLS:
        if held >= size and held % size == 0:
            processes = held // size
            return name if processes == 1 else f"{processes} processes x {size}, {name}"
    return None


def processes_of(held: int) -> tuple[int, int]:
    """(processes, per process) for a plateau, from the pool it matches; (1, held) when none does."""
    for size, _ in KNOWN_POOLS:
        if held >= size and held % size == 0:
            return held // size, size
    return 1, held


def analyze_sample(data: SampleData) -> SampleReport:
    """The whole analysis of a stored sample (`connections --snapshot` on `snapshot --sample`)."""
    analysis = SampleAnalysis()
    for tick in data.ticks:
        analysis.add(tick)
    return analysis.finish(data)


# --- findings ---------------------------------------------------------------------------------------


def find(report: SampleReport) -> list[Finding]:
    findings: list[Finding] = []
    slots_left = max(report.usable - report.clients_max, 0)
    timeout = report.server.setting("idle_in_transaction_session_timeout") or "0"
    for g in report.groups:
        f = saturated(g, slots_left)
        if f is not None:
            findings.append(f)
        f = slow_work(g, timeout)
        if f is not None:
            findings.append(f)
        f = held_idle(g, report.window_s)
        if f is not None:
            findings.append(f)
    return findings


def _stack_pool_lines(per_process: int, matched: str | None, size: int, overflow: int) -> str:
    lines = []
    if matched is None or "SQLAlchemy" in matched:
        lines.append(
            f"SQLAlchemy: create_engine(url, pool_size={size}, max_overflow={overflow}) (async: "
            f"create_async_engine(url, pool_size={size}, max_overflow={overflow})); Flask-SQLAlchemy: "
            f'SQLALCHEMY_ENGINE_OPTIONS = {{"pool_size": {size}, "max_overflow": {overflow}}}'
        )
    if matched is None or "asyncpg" in matched:
        lines.append(f"asyncpg: create_pool(dsn, min_size=1, max_size={per_process})")
    if matched is None:
        lines.append(
            "Django keeps one connection per thread: more threads (or processes), or on Django 5.1+ "
            f'a pool: DATABASES["default"]["OPTIONS"] = {{"pool": {{"min_size": 2, "max_size": '
            f"{per_process}}}}}"
        )
    return "; ".join(lines)


def saturated(g: SampleGroup, slots_left: int) -> Finding | None:
    if not (
        g.plateau
        and g.held_max >= SATURATED_MIN_CONNECTIONS
        and g.time_share.get("idle", 0.0) <= SATURATED_IDLE_SHARE
        and slots_left > 0
    ):
        return None
    x = g.xacts
    processes, per_process = processes_of(g.held_max)
    mean = x.mean_s if x.mean_s else (g.busy_mean / x.per_s if x.per_s else None)
    demand = (
        f"demand (Little's law): {x.per_s:g} transactions/s x {duration(mean)} each = "
        f"{x.per_s * mean:.1f} connections busy, the whole pool"
        if mean
        else f"{g.busy_mean:g} connections busy on average, the whole pool"
    )
    match = f"; {g.held_max} matches {g.pool_match}" if g.pool_match else ""
    message = (
        f"{g.held_max} connections held from {g.client} for {g.plateau_share:.0%} of the sample "
        f"(between {g.held_min} and {g.held_max}), idle {g.time_share.get('idle', 0.0):.0%} of the time"
        f"{'' if g.ever_idle else ', never idle'}: every connection is checked out, so further "
        f"requests wait inside the application (in its pool, or for a worker thread), while the server "
        f"had {slots_left} slot(s) free{match}; {demand}"
    )
    iit = g.time_share.get("idle_in_transaction", 0.0)
    busy_share = sum(g.time_share.get(c, 0.0) for c in BUSY)
    if iit >= 0.5 * busy_share and iit > 0:
        active_mean = mean * (1 - (x.idle_share or iit)) if mean else None
        message += (
            f". {iit:.0%} of that time is idle in transaction: the cause is slow work inside the "
            "transaction, and a bigger pool only moves the queue to PostgreSQL"
        )
        serves = (
            f": the transactions' own work takes {duration(active_mean)} of their {duration(mean)}, so "
            f"each request would hold its connection {mean / active_mean:.0f}x shorter and the same "
            f"{per_process} connections per process would carry the load"
            if mean and active_mean and active_mean > 0
            else ""
        )
        advice = (
            "end the transaction and return the connection before the slow call (an LLM call, an HTTP "
            f"request), open a new one after it{serves}; do not raise the pool for this"
        )
    else:
        grow = max(per_process * 2, math.ceil(HEADROOM * per_process))
        if processes * grow - g.held_max > slots_left:
            grow = per_process + max(slots_left // processes, 0)
        size = max(grow // 3, 1)
        advice = (
            f"raise the pool to {grow} connections per process ({processes} x {grow} = "
            f"{processes * grow}, within the server's {slots_left} free slots), or put PgBouncer in "
            f"front: {_stack_pool_lines(grow, g.pool_match, size, grow - size)}"
        )
    return Finding(Severity.WARNING, "app_pool_saturated", g.label, message, advice)


def slow_work(g: SampleGroup, timeout_ms: str) -> Finding | None:
    x = g.xacts
    seen = x.ended + x.open
    if (
        x.idle_share is None
        or x.idle_share < SLOW_WORK_IDLE_SHARE
        or x.typical_idle_gap_s is None
        or x.typical_idle_gap_s < SLOW_WORK_MIN_GAP_S
        or seen < SLOW_WORK_MIN_XACTS
    ):
        return None
    gap = x.typical_idle_gap_s
    durations = (
        f" (ended: p50 {duration(x.p50_s)}, p95 {duration(x.p95_s)}, max {duration(x.max_s)})"
        if x.ended
        else ""
    )
    try:
        timeout_s = int(timeout_ms) / 1000
    except ValueError:
        timeout_s = 0.0
    if timeout_s <= 0:
        timeout_text = "idle_in_transaction_session_timeout is off"
    elif timeout_s > gap:
        timeout_text = f"idle_in_transaction_session_timeout ({duration(timeout_s)}) never catches these gaps"
    else:
        timeout_text = f"idle_in_transaction_session_timeout ({duration(timeout_s)}) ends some of them"
    message = (
        f"transactions spend {x.idle_share:.0%} of their time idle in transaction, typical idle gap "
        f"{duration(gap)}, longest {duration(x.longest_idle_gap_s)}, in {seen} transaction(s) seen"
        f"{durations}: the application waits on something else (an LLM call, an HTTP request) with the "
        "transaction open, holding a connection, its locks and its snapshot"
    )
    advice = (
        "end the transaction and return the connection before the slow call, open a new one after it "
        "(SQLAlchemy: session.commit() or leave `with Session() as session:` before the call; "
        "Flask-SQLAlchemy: db.session.commit() then db.session.remove(); Django: keep the call out of "
        "transaction.atomic() and ATOMIC_REQUESTS; asyncpg: leave `async with conn.transaction()` and "
        f"release the connection before awaiting it). {timeout_text}: a timeout of a minute never "
        f"catches {duration(gap)} gaps, and ending the session is no fix"
    )
    return Finding(Severity.WARNING, "slow_work_in_transaction", g.label, message, advice)


def held_idle(g: SampleGroup, window_s: float) -> Finding | None:
    idle = g.time_share.get("idle", 0.0)
    if not (
        g.plateau
        and g.held_max >= SATURATED_MIN_CONNECTIONS
        and idle >= HELD_IDLE_SHARE
        and g.state_changes < HELD_MAX_CHANGES_PER_S * g.held_max * window_s
    ):
        return None
    return Finding(
        Severity.INFO,
        "app_connections_held",
        g.label,
        f"{g.held_max} connections held for {g.plateau_share:.0%} of the sample, idle {idle:.0%} of the "
        f"time, {g.state_changes} change(s) of state seen: connections kept open and unused, one per "
        "worker thread or process kept for good (Django with CONN_MAX_AGE = None keeps one per "
        "thread), or checked out and never returned (a leak). They are not demand, and a leak is not "
        "an oversized pool",
        "return them rather than shrink or recycle the pool: SQLAlchemy's pool_recycle replaces a "
        "connection only when it is checked in and never frees a checked-out one; close every session "
        "(`with Session() as session:`; Flask-SQLAlchemy: db.session.remove() in threads and jobs outside "
        "requests; asyncpg: `async with pool.acquire()`). Django: CONN_MAX_AGE = 60 with "
        'CONN_HEALTH_CHECKS = True, or on 5.1+ OPTIONS {"pool": {"max_size": N}} with CONN_MAX_AGE = 0. '
        "On the server, idle_session_timeout (PostgreSQL 14+) ends sessions idle longer than it",
    )
