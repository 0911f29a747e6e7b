"""`pgdoctor timeline`: a recording told as the story of an incident. Slots in use over time, per
application and class; lock waits and PgBouncer's waiting clients; when each finding appeared and cleared;
the peak. Pure: a `Recording` in, a `TimelineReport` out."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from pgdoctor.analyze.findings import Finding, Severity
from pgdoctor.analyze.record import Recording, Tick, finding_key

OTHER_APPS = "(other apps)"
TOP_APPS = 6  # applications shown as columns of the table; the rest are summed under OTHER_APPS
DEFAULT_ROWS = 40  # table rows when the recording has more ticks (0: every tick)


@dataclass(frozen=True)
class Point:
    """One tick, as the timeline shows it."""

    t: float
    used: int
    usable: int
    usage_pct: float
    apps: dict[str, int]  # application -> sessions (every application)
    classes: dict[str, int]  # class -> sessions (all applications)
    blocked: int
    blockers: int
    oldest_idle_in_transaction_s: float | None
    oldest_xact_s: float | None
    pgbouncer_waiting: int | None  # clients waiting in PgBouncer, all pools; None without PgBouncer
    pgbouncer_maxwait_s: float | None
    events: list[str]  # "+critical capacity [server]", "-warning idle_connections [app]", …
    error: str | None = None


@dataclass(frozen=True)
class Episode:
    """A finding from the tick it first appeared to the tick it was gone (None: still there at the end)."""

    code: str
    subject: str
    severity: str  # the worst it reached
    first_t: float
    cleared_t: float | None
    ticks: int
    message: str


@dataclass(frozen=True)
class AppClass:
    """One application's sessions of one class over the recording."""

    application: str
    cls: str
    first: int
    peak: int
    peak_t: float
    last: int


@dataclass(frozen=True)
class TimelineReport:
    recording: Recording
    points: list[Point]
    shown: list[int]  # indices of `points` the table shows
    top_apps: list[str]  # the table's application columns
    app_classes: list[AppClass]
    episodes: list[Episode]
    peak: int | None  # index in `points` of the most slots used
    findings: list[Finding] = field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        return self.recording.notes


def _classes(tick: Tick) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for counts in tick.apps.values():
        for cls, n in counts.items():
            out[cls] += n
    return dict(sorted(out.items()))


def _pool_wait(tick: Tick) -> tuple[int | None, float | None]:
    if tick.pools is None:
        return None, None
    return sum(p.cl_waiting for p in tick.pools), max((p.maxwait_s for p in tick.pools), default=0.0)


@dataclass
class _Open:
    code: str
    subject: str
    severity: str
    first: float
    message: str
    ticks: int = 1

    def closed(self, at: float | None) -> Episode:
        return Episode(self.code, self.subject, self.severity, self.first, at, self.ticks, self.message)


def _episodes(ticks: list[Tick], events: list[list[str]]) -> list[Episode]:
    """Findings' presence over the ticks (a failed read neither starts nor ends one), with each tick's
    "+severity code [subject]", "^severity …" (worse) and "-code [subject]" events added to `events`."""
    rank = {s.value: s.rank for s in Severity}
    open_: dict[str, _Open] = {}
    done: list[Episode] = []
    for i, tick in enumerate(ticks):
        if tick.error is not None:
            continue
        now = {finding_key(code, subject): (sev, code, subject) for sev, code, subject in tick.findings}
        for key in [k for k in open_ if k not in now]:
            gone = open_.pop(key)
            events[i].append(f"-{gone.code} [{gone.subject}]")
            done.append(gone.closed(tick.t))
        for key, (sev, code, subject) in now.items():
            if (e := open_.get(key)) is None:
                open_[key] = _Open(code, subject, sev, tick.t, tick.messages.get(key, ""))
                events[i].append(f"+{sev} {code} [{subject}]")
                continue
            e.ticks += 1
            if rank.get(sev, 0) > rank.get(e.severity, 0):
                e.severity = sev
                events[i].append(f"^{sev} {code} [{subject}]")
            if not e.message and key in tick.messages:
                e.message = tick.messages[key]
    done.extend(e.closed(None) for e in open_.values())
    return sorted(done, key=lambda e: (e.first_t, e.code, e.subject))


def _app_classes(ticks: list[Tick]) -> list[AppClass]:
    """Each application and class seen: at the first tick, its peak (the earliest, if reached again), at
    the last tick. One pass over the ticks."""
    good = [t for t in ticks if t.error is None]
    if not good:
        return []
    peaks: dict[tuple[str, str], tuple[int, float]] = {}
    for t in good:
        for app, counts in t.apps.items():
            for cls, n in counts.items():
                seen = peaks.get((app, cls))
                if seen is None or n > seen[0]:
                    peaks[(app, cls)] = (n, t.t)
    first, last = good[0].apps, good[-1].apps
    return sorted(
        (
            AppClass(app, cls, first.get(app, {}).get(cls, 0), peak, at, last.get(app, {}).get(cls, 0))
            for (app, cls), (peak, at) in peaks.items()
        ),
        key=lambda a: (-a.peak, a.application, a.cls),
    )


def _shown(points: list[Point], rows: int, peak: int | None) -> list[int]:
    """Every tick when they fit in `rows` (0: always); else the busiest tick of each of `rows` equal
    stretches of time, plus every tick where something happened and the peak."""
    if rows == 0 or len(points) <= rows:
        return list(range(len(points)))
    start, end = points[0].t, points[-1].t
    span = (end - start) or 1.0
    best: dict[int, int] = {}
    for i, p in enumerate(points):
        bucket = min(int((p.t - start) / span * rows), rows - 1)
        if bucket not in best or p.used > points[best[bucket]].used:
            best[bucket] = i
    keep = set(best.values()) | {i for i, p in enumerate(points) if p.events or p.error}
    if peak is not None:
        keep.add(peak)
    return sorted(keep)


def analyze_timeline(
    recording: Recording, *, rows: int = DEFAULT_ROWS, top: int = TOP_APPS
) -> TimelineReport:
    ticks = sorted(recording.ticks, key=lambda t: t.t)
    events: list[list[str]] = [[] for _ in ticks]
    for later in recording.resumed:
        i = next((k for k, t in enumerate(ticks) if t.t >= later.started), None)
        if i is not None:
            events[i].append("(recording resumed)")
    episodes = _episodes(ticks, events)
    points = []
    for tick, happened in zip(ticks, events, strict=True):
        waiting, maxwait = _pool_wait(tick)
        ev = [*happened, f"read failed: {tick.error}"] if tick.error else happened
        points.append(
            Point(
                t=tick.t,
                used=tick.used,
                usable=tick.usable,
                usage_pct=round(100.0 * tick.used / tick.usable, 1) if tick.usable else 0.0,
                apps={app: sum(c.values()) for app, c in tick.apps.items()},
                classes=_classes(tick),
                blocked=tick.blocked,
                blockers=tick.blockers,
                oldest_idle_in_transaction_s=tick.oldest_idle_in_transaction_s,
                oldest_xact_s=tick.oldest_xact_s,
                pgbouncer_waiting=waiting,
                pgbouncer_maxwait_s=maxwait,
                events=ev,
                error=tick.error,
            )
        )
    good = [i for i, p in enumerate(points) if p.error is None]
    peak = max(good, key=lambda i: (points[i].used, -i)) if good else None
    peaks: dict[str, int] = defaultdict(int)
    for p in points:
        for app, n in p.apps.items():
            peaks[app] = max(peaks[app], n)
    top_apps = sorted(peaks, key=lambda a: (-peaks[a], a))[:top]
    return TimelineReport(
        recording=recording,
        points=points,
        shown=_shown(points, rows, peak),
        top_apps=top_apps,
        app_classes=_app_classes(ticks),
        episodes=episodes,
        peak=peak,
        findings=[
            Finding(Severity(e.severity), e.code, e.subject, e.message or f"{e.code} [{e.subject}]")
            for e in episodes
            if e.severity in {s.value for s in Severity}
        ],
    )
