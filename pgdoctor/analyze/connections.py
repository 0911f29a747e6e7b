"""Who holds the connections: every client session classified and grouped (`analyze.sessions`), measured
against capacity, and what is wrong, one small function per finding."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pgdoctor.analyze import actions
from pgdoctor.analyze.common import CLIENT_BACKEND, insufficient_privilege
from pgdoctor.analyze.findings import Finding, Severity, sort_findings
from pgdoctor.analyze.format import duration as _dur
from pgdoctor.analyze.sessions import (
    CLASSES,
    GROUP_BY,
    IDLE_IN_XACT,
    POOLER_IDLE,
    Group,
    Session,
    ViaPgBouncer,
    backend_type_of,
    classify,
    client_of,
    group_key,
    group_keys,
    group_sessions,
    to_session,
)
from pgdoctor.collect.connections import ConnectionsData
from pgdoctor.collect.server import ServerInfo

# Imported where used, not by every run (start-up, benchmarks/README.md): the process list's types (--ps)
# and the lock graph (only when a session waits on a lock).
if TYPE_CHECKING:
    from pgdoctor.collect.ps import PsServer

__all__ = [  # the sessions' names, used with the report by renderers and the --ps and pgbouncer analyses
    "CLASSES",
    "GROUP_BY",
    "POOLER_IDLE",
    "Capacity",
    "ConnectionsReport",
    "Group",
    "Session",
    "ViaPgBouncer",
    "analyze",
    "backend_type_of",
    "capacity_of",
    "classify",
    "client_of",
    "find_capacity",
    "group_key",
    "group_sessions",
    "to_session",
]


@dataclass(frozen=True)
class Capacity:
    max_connections: int
    superuser_reserved_connections: int
    reserved_connections: int
    usable: int  # ordinary slots: max_connections minus both reserves
    clients: int  # client backends in use, pgdoctor's own excluded
    usage_pct: float
    slots_left: int  # ordinary slots still free


@dataclass(frozen=True)
class ConnectionsReport:
    server: ServerInfo
    by: str
    capacity: Capacity
    groups: list[Group]
    sessions: list[Session]  # client backends
    background: list[Session]  # autovacuum, WAL senders, background and parallel workers
    findings: list[Finding]
    ps: PsServer | None = None  # set when read from the process list (`--ps`), not over SQL

    @property
    def source(self) -> str:
        return "sql" if self.ps is None else "ps"


def capacity_of(server: ServerInfo, clients: int) -> Capacity:
    """Ordinary slots as the server enforces them (see "Connections and Authentication" in the docs)."""
    max_conn = server.int_setting("max_connections")
    su_reserved = server.int_setting("superuser_reserved_connections")
    reserved = server.int_setting("reserved_connections")  # absent before PostgreSQL 16: 0
    usable = max(max_conn - su_reserved - reserved, 0)
    return Capacity(
        max_connections=max_conn,
        superuser_reserved_connections=su_reserved,
        reserved_connections=reserved,
        usable=usable,
        clients=clients,
        usage_pct=round(100.0 * clients / usable, 1) if usable else 100.0,
        slots_left=max(usable - clients, 0),
    )


def _pids(sessions: Iterable[Session]) -> tuple[int, ...]:
    return tuple(sorted(s.pid for s in sessions))


def _by_app(sessions: Iterable[Session], apps: Iterable[str]) -> dict[str, list[Session]]:
    """`sessions` by application (group key `apps`, aligned with them), applications sorted."""
    out: dict[str, list[Session]] = defaultdict(list)
    for app, s in zip(apps, sessions, strict=True):
        out[app].append(s)
    return dict(sorted(out.items()))


def root_names(roots: Iterable[int], rows: dict[int, Session]) -> str:
    """The root blockers as the `blocked` finding names them: pid (application, state)."""
    from pgdoctor.analyze.lock_graph import PREPARED

    names = []
    for pid in roots:
        r = rows.get(pid)
        if pid == PREPARED:
            names.append(f"{pid} (a prepared transaction)")
        elif r is None:
            names.append(f"{pid} (gone)")
        else:
            names.append(f"{pid} ({r.application_name or '(none)'}, {r.state or r.cls})")
    return ", ".join(names)


def find_capacity(cap: Capacity, *, warn_pct: float, crit_pct: float) -> list[Finding]:
    if cap.usable == 0 or cap.usage_pct < warn_pct:
        return []
    advice = (
        "free slots from the largest holders in the table above (idle and idle-in-transaction first); "
        "put a pooler (PgBouncer) in front, or size app pools with `pgdoctor recommend`"
    )
    reserve = f"superuser_reserved_connections={cap.superuser_reserved_connections}" + (
        f", reserved_connections={cap.reserved_connections}" if cap.reserved_connections else ""
    )
    if cap.clients >= cap.max_connections:  # only seen from the process list: no SQL client got in
        msg = (
            f"every slot is in use, the reserved ones too: {cap.clients} clients hold all "
            f"max_connections={cap.max_connections}; new clients, superusers included, fail with "
            "'sorry, too many clients already'"
        )
        sev = Severity.CRITICAL
        advice = (
            "free slots from the largest holders in the table above (idle and idle-in-transaction first): "
            "stop or shrink their application, or on the host `kill <pid>` (SIGTERM, what "
            "pg_terminate_backend sends) ends one backend; then keep superuser_reserved_connections > 0 "
            "and let no application connect as a superuser, so an administrator can always get in"
        )
    elif cap.clients >= cap.usable:
        msg = (
            f"no ordinary slot left: {cap.clients} clients hold all {cap.usable} usable slots "
            f"(max_connections={cap.max_connections} minus {reserve}); new ordinary clients fail with "
            "'remaining connection slots are reserved'"
        )
        sev = Severity.CRITICAL
    else:
        msg = f"{cap.clients} of {cap.usable} usable slots in use ({cap.usage_pct:g}%), {cap.slots_left} left"
        sev = Severity.CRITICAL if cap.usage_pct >= crit_pct else Severity.WARNING
    return [
        Finding(
            sev,
            "capacity",
            "server",
            msg,
            advice,
        )
    ]


@dataclass(frozen=True)
class Thresholds:
    """What the findings are measured against (the analysis' keyword arguments, documented there)."""

    capacity_warn_pct: float
    capacity_crit_pct: float
    idle_xact_warn_s: float
    idle_xact_crit_s: float
    leak_min_idle: int
    leak_share_pct: float
    leak_idle_s: float
    blocked_crit_s: float
    xmin_warn_s: float
    xmin_crit_age: int


class _Picture:
    """The client sessions, each once with its application's group key, for the finding rules."""

    def __init__(self, sessions: list[Session], apps: list[str]) -> None:
        self.sessions = sessions
        self.apps = apps
        self.blockers = {pid for s in sessions for pid in s.blocked_by}

    def by_app(self, classes: Sequence[str]) -> dict[str, list[Session]]:
        keep = [(a, s) for a, s in zip(self.apps, self.sessions, strict=True) if s.cls in classes]
        return _by_app((s for _, s in keep), (a for a, _ in keep))


def idle_in_transaction(p: _Picture, server: ServerInfo, t: Thresholds) -> list[Finding]:
    """Per application, sessions idle in a transaction for long, or holding up others."""
    idle_timeout = server.setting("idle_in_transaction_session_timeout") or "0"
    findings = []
    for app, candidates in p.by_app(IDLE_IN_XACT).items():
        members = [s for s in candidates if (s.state_age_s or 0) >= t.idle_xact_warn_s or s.pid in p.blockers]
        if not members:
            continue
        oldest = max(s.state_age_s or 0 for s in members)
        blocking = [s for s in members if s.pid in p.blockers]
        sev = Severity.CRITICAL if blocking or oldest >= t.idle_xact_crit_s else Severity.WARNING
        extra = f"; {len(blocking)} of them block other sessions" if blocking else ""
        findings.append(
            Finding(
                sev,
                "idle_in_transaction",
                app,
                f"{len(members)} session(s) idle in transaction, the oldest for {_dur(oldest)}{extra}; "
                "they hold their locks and snapshot and a connection slot",
                "commit or roll back before slow work (an LLM call, an HTTP request) in the application; "
                f"set idle_in_transaction_session_timeout (now {idle_timeout}ms, 0 = off) so the server "
                "ends such sessions",
                _pids(members),
                actions.lines(
                    actions.terminate_sessions(members),
                    actions.prevent(
                        members, "idle_in_transaction_session_timeout", t.idle_xact_crit_s, server
                    ),
                ),
            )
        )
    return findings


def idle_connections(p: _Picture, cap: Capacity, server: ServerInfo, t: Thresholds) -> list[Finding]:
    """Per application, many idle connections: a pool larger than its load, or leaked ones."""
    findings = []
    for app, members in p.by_app(("idle",)).items():
        old = [s for s in members if (s.state_age_s or 0) >= t.leak_idle_s]
        share = 100.0 * len(members) / cap.usable if cap.usable else 100.0
        if len(members) < t.leak_min_idle or (share < t.leak_share_pct and len(old) < t.leak_min_idle):
            continue
        sev = (
            Severity.CRITICAL
            if share >= t.leak_share_pct and cap.usage_pct >= t.capacity_crit_pct
            else Severity.WARNING
        )
        oldest = max(s.state_age_s or 0 for s in members)
        findings.append(
            Finding(
                sev,
                "idle_connections",
                app,
                f"{len(members)} idle connections ({share:.0f}% of usable slots), {len(old)} idle for over "
                f"{_dur(t.leak_idle_s)}, the oldest for {_dur(oldest)}: a pool larger than its load, or "
                "connections leaked (never returned or closed)",
                "cap the application's pool (pool_size/max_overflow) and recycle idle connections "
                "(pool_recycle); set idle_session_timeout (PostgreSQL 14+) or put PgBouncer in front",
                _pids(members),
                actions.lines(
                    actions.terminate_sessions(members),
                    actions.prevent(members, "idle_session_timeout", t.leak_idle_s, server),
                ),
            )
        )
    return findings


def blocked(p: _Picture, data: ConnectionsData, every: list[Session], t: Thresholds) -> list[Finding]:
    """Per application, sessions waiting on locks, with the root blockers `locks` names too."""
    groups = p.by_app(("blocked",))
    if not groups:
        return []
    from pgdoctor.analyze.activity import waits_for
    from pgdoctor.analyze.lock_graph import root_blockers

    by_pid = {s.pid: s for s in every}
    waits = waits_for(data.activity)  # the waits-for graph `locks` draws: the same root blockers
    rows = {r.pid: r for r in data.activity}
    findings = []
    for app, members in groups.items():
        longest = max(s.query_age_s or 0 for s in members)
        holders = sorted({pid for s in members for pid in s.blocked_by})
        roots = root_names(root_blockers(waits, above=_pids(members)), by_pid)
        findings.append(
            Finding(
                Severity.CRITICAL if longest >= t.blocked_crit_s else Severity.WARNING,
                "blocked",
                app,
                f"{len(members)} session(s) waiting on locks for up to {_dur(longest)}, blocked by pid(s) "
                f"{', '.join(map(str, holders))}" + (f"; root blocker(s): {roots}" if roots else ""),
                "run `pgdoctor locks` for the blocking tree and the root blocker",
                _pids(members),
                actions.end_sessions(root_blockers(waits, above=_pids(members)), rows),
            )
        )
    return findings


def xmin_horizon(sessions: list[Session], data: ConnectionsData, t: Thresholds) -> list[Finding]:
    """A transaction holding back the xmin horizon for long."""
    long = [
        s
        for s in sessions
        if s.xmin_age is not None and s.xact_age_s is not None and s.xact_age_s >= t.xmin_warn_s
    ]
    rows = {r.pid: r for r in data.activity} if long else {}  # built once, and only when needed
    return [
        Finding(
            Severity.CRITICAL if s.xmin_age >= t.xmin_crit_age else Severity.WARNING,
            "xmin_horizon",
            s.application_name or "(none)",
            f"pid {s.pid} has held a snapshot for {_dur(s.xact_age_s)} ({s.xmin_age} transactions "
            "old): VACUUM cannot remove rows that died since",
            "end that transaction; bound transactions with idle_in_transaction_session_timeout or "
            "statement_timeout",
            (s.pid,),
            actions.end_session(rows[s.pid]),
        )
        for s in long
        if s.xmin_age is not None and s.xact_age_s is not None
    ]


def hidden_sessions(sessions: list[Session], server: ServerInfo) -> list[Finding]:
    """Other roles' sessions this role may not read."""
    hidden = [s for s in sessions if not s.visible]
    if not hidden or server.can_read_all_stats:
        return []
    return [
        insufficient_privilege(
            server.current_user,
            f"{len(hidden)} session(s) of other roles show only pid, user, database and application: "
            f"role {server.current_user} cannot read their state or query",
            _pids(hidden),
        )
    ]


def analyze(
    data: ConnectionsData,
    *,
    by: str = "application",
    # Share of usable slots at which saturation is reported. A full server refuses ordinary clients
    # ("Connections and Authentication: max_connections" in the PostgreSQL docs).
    capacity_warn_pct: float = 80.0,
    capacity_crit_pct: float = 95.0,
    # An idle-in-transaction session holds its locks and its snapshot; the docs'
    # idle_in_transaction_session_timeout exists to bound exactly this ("Client Connection Defaults").
    idle_xact_warn_s: float = 60.0,
    idle_xact_crit_s: float = 600.0,
    # Leaked pools: many idle sessions of one application that take a large share of the slots or have
    # sat unused for long (idle_session_timeout, PostgreSQL 14+, bounds these on the server side).
    leak_min_idle: int = 10,
    leak_share_pct: float = 25.0,
    leak_idle_s: float = 600.0,
    # Lock waits longer than deadlock_timeout (1s by default) are logged by log_lock_waits; a minute is
    # a pile-up ("Lock Management" in the docs).
    blocked_crit_s: float = 60.0,
    # A transaction holding back the xmin horizon stops VACUUM removing dead rows ("Routine Vacuuming").
    xmin_warn_s: float = 3600.0,
    # autovacuum_freeze_max_age defaults to 200 million transactions ("Preventing Transaction ID
    # Wraparound Failures"); an xmin that old forces anti-wraparound vacuums.
    xmin_crit_age: int = 200_000_000,
    via: dict[int, ViaPgBouncer] | None = None,
) -> ConnectionsReport:
    """Classify, group and measure the sessions, and say what is wrong."""
    if by not in GROUP_BY:
        raise ValueError(f"by must be one of {GROUP_BY}")
    t = Thresholds(
        capacity_warn_pct, capacity_crit_pct, idle_xact_warn_s, idle_xact_crit_s, leak_min_idle,
        leak_share_pct, leak_idle_s, blocked_crit_s, xmin_warn_s, xmin_crit_age,
    )  # fmt: skip
    every = [to_session(r) for r in data.activity]
    if via:  # `--pgbouncer-dsn`: PgBouncer's server connections, labelled with the clients they serve
        every = [replace(s, via_pgbouncer=via.get(s.pid)) for s in every]
    sessions = [s for s in every if s.backend_type == CLIENT_BACKEND]
    background = [s for s in every if s.backend_type != CLIENT_BACKEND]
    keys = group_keys(sessions, by)
    apps = keys if by == "application" else group_keys(sessions, "application")
    picture = _Picture(sessions, apps)
    cap = capacity_of(data.server, len(sessions))
    findings = [
        *find_capacity(cap, warn_pct=t.capacity_warn_pct, crit_pct=t.capacity_crit_pct),
        *idle_in_transaction(picture, data.server, t),
        *idle_connections(picture, cap, data.server, t),
        *blocked(picture, data, every, t),
        *xmin_horizon(sessions, data, t),
        *hidden_sessions(sessions, data.server),
    ]
    # by group key, class, pid: three stable sorts with C-level keys (100,000 sessions: 2x faster than one
    # sort on a tuple built per session)
    order = sorted(range(len(sessions)), key=[s.pid for s in sessions].__getitem__)
    order.sort(key=[s.cls for s in sessions].__getitem__)
    order.sort(key=keys.__getitem__)
    return ConnectionsReport(
        server=data.server,
        by=by,
        capacity=cap,
        groups=group_sessions(sessions, by, keys),
        sessions=[sessions[i] for i in order],
        background=sorted(background, key=lambda s: (s.backend_type, s.pid)),
        findings=sort_findings(findings),
    )
