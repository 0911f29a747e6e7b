"""Who holds the connections: classify every client session, group it, measure it against capacity."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from pgdoctor.analyze.activity import waits_for
from pgdoctor.analyze.common import CLIENT_BACKEND, HIDDEN_QUERY, insufficient_privilege
from pgdoctor.analyze.findings import Finding, Severity, sort_findings
from pgdoctor.analyze.format import duration as _dur
from pgdoctor.analyze.lock_graph import PREPARED, root_blockers
from pgdoctor.collect.activity import ActivityRow
from pgdoctor.collect.connections import ConnectionsData
from pgdoctor.collect.ps import PsServer
from pgdoctor.collect.server import ServerInfo

CLASSES = ("active", "idle", "idle_in_transaction", "idle_in_transaction_aborted", "blocked", "other")
GROUP_BY = ("application", "user", "database", "client")

_STATE_CLASS = {
    "active": "active",
    "idle": "idle",
    "idle in transaction": "idle_in_transaction",
    "idle in transaction (aborted)": "idle_in_transaction_aborted",
}


@dataclass(frozen=True)
class ViaPgBouncer:
    """The PgBouncer client a backend (a PgBouncer server connection) serves now (`connections
    --pgbouncer-dsn`); client fields None when the server connection is idle in PgBouncer's pool."""

    pool: str  # database/user
    client_addr: str | None
    client_port: int | None
    application_name: str | None


# The group key of PgBouncer's server connections that serve no client right now.
POOLER_IDLE = "pgbouncer (idle server connection)"


@dataclass(frozen=True, slots=True)
class Session:
    """A backend as pgdoctor reports it."""

    pid: int
    backend_type: str
    application_name: str
    usename: str | None
    datname: str | None
    client: str
    cls: str
    state: str | None
    wait: str | None
    state_age_s: float | None
    xact_age_s: float | None
    query_age_s: float | None
    xmin_age: int | None
    query: str | None
    blocked_by: tuple[int, ...]
    visible: bool
    via_pgbouncer: ViaPgBouncer | None = None


@dataclass(frozen=True)
class Group:
    key: str
    total: int
    counts: dict[str, int]
    oldest_idle_in_transaction_s: float | None
    oldest_xact_s: float | None
    pids: tuple[int, ...]


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


def classify(row: ActivityRow) -> str:
    """Exactly one class per client backend; waiting on a heavyweight lock wins over `active`."""
    if row.wait_event_type == "Lock":
        return "blocked"
    return _STATE_CLASS.get(row.state or "", "other")


def client_of(row: ActivityRow) -> str:
    if row.client_hostname:
        return row.client_hostname
    if row.client_addr:
        return row.client_addr
    return "local socket" if row.backend_type == CLIENT_BACKEND else ""  # hidden rows: no address shown


def backend_type_of(row: ActivityRow) -> str:
    """The backend type; hidden from roles without pg_read_all_stats, then inferred: a backend with both a
    database and a user is a client (autovacuum workers have no user, launchers no database)."""
    if row.backend_type:
        return row.backend_type
    return CLIENT_BACKEND if row.datname and row.usename else "unknown"


def to_session(row: ActivityRow) -> Session:
    visible = row.query != HIDDEN_QUERY
    backend_type = backend_type_of(row)
    return Session(
        pid=row.pid,
        backend_type=backend_type,
        application_name=row.application_name,
        usename=row.usename,
        datname=row.datname,
        client=client_of(row),
        cls=classify(row) if backend_type == CLIENT_BACKEND else backend_type,
        state=row.state,
        wait=f"{row.wait_event_type}:{row.wait_event}" if row.wait_event else row.wait_event_type,
        state_age_s=row.state_age_s,
        xact_age_s=row.xact_age_s,
        query_age_s=row.query_age_s,
        xmin_age=row.xmin_age,
        query=row.query,
        blocked_by=tuple(row.blocked_by),
        visible=visible,
    )


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


def group_key(session: Session, by: str) -> str:
    via = session.via_pgbouncer
    if via is not None and by in ("application", "client"):
        if via.client_addr is None and via.client_port is None and via.application_name is None:
            return POOLER_IDLE
        value = via.application_name if by == "application" else via.client_addr
        return (value or "(none)") + " (via pgbouncer)"
    value = {
        "application": session.application_name,
        "user": session.usename,
        "database": session.datname,
        "client": session.client,
    }[by]
    return value or "(none)"


def group_sessions(sessions: Iterable[Session], by: str) -> list[Group]:
    buckets: dict[str, list[Session]] = defaultdict(list)
    for s in sessions:
        buckets[group_key(s, by)].append(s)
    groups = []
    for key, members in buckets.items():
        counts = dict.fromkeys(CLASSES, 0)
        for s in members:
            counts[s.cls] += 1
        idle_xact = [
            s.state_age_s
            for s in members
            if s.cls in ("idle_in_transaction", "idle_in_transaction_aborted") and s.state_age_s is not None
        ]
        xacts = [s.xact_age_s for s in members if s.xact_age_s is not None]
        groups.append(
            Group(
                key=key,
                total=len(members),
                counts=counts,
                oldest_idle_in_transaction_s=max(idle_xact, default=None),
                oldest_xact_s=max(xacts, default=None),
                pids=tuple(sorted(s.pid for s in members)),
            )
        )
    return sorted(groups, key=lambda g: (-g.total, g.key))


def _by_app(sessions: Iterable[Session], keep: Callable[[Session], bool]) -> dict[str, list[Session]]:
    out: dict[str, list[Session]] = defaultdict(list)
    for s in sessions:
        if keep(s):
            out[group_key(s, "application")].append(s)
    return dict(sorted(out.items()))


def _pids(sessions: Iterable[Session]) -> tuple[int, ...]:
    return tuple(sorted(s.pid for s in sessions))


def root_names(roots: Iterable[int], rows: dict[int, Session]) -> str:
    """The root blockers as the `blocked` finding names them: pid (application, state)."""
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
    every = [to_session(r) for r in data.activity]
    if via:  # `--pgbouncer-dsn`: PgBouncer's server connections, labelled with the clients they serve
        every = [replace(s, via_pgbouncer=via.get(s.pid)) for s in every]
    sessions = [s for s in every if s.backend_type == CLIENT_BACKEND]
    background = [s for s in every if s.backend_type != CLIENT_BACKEND]
    cap = capacity_of(data.server, len(sessions))
    findings = find_capacity(cap, warn_pct=capacity_warn_pct, crit_pct=capacity_crit_pct)

    blockers = {pid for s in sessions for pid in s.blocked_by}
    idle_timeout = data.server.setting("idle_in_transaction_session_timeout") or "0"
    for app, members in _by_app(
        sessions,
        lambda s: (
            s.cls in ("idle_in_transaction", "idle_in_transaction_aborted")
            and ((s.state_age_s or 0) >= idle_xact_warn_s or s.pid in blockers)
        ),
    ).items():
        oldest = max(s.state_age_s or 0 for s in members)
        blocking = [s for s in members if s.pid in blockers]
        sev = Severity.CRITICAL if blocking or oldest >= idle_xact_crit_s else Severity.WARNING
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
            )
        )

    idle_by_app = _by_app(sessions, lambda s: s.cls == "idle")
    for app, members in idle_by_app.items():
        old = [s for s in members if (s.state_age_s or 0) >= leak_idle_s]
        share = 100.0 * len(members) / cap.usable if cap.usable else 100.0
        if len(members) < leak_min_idle or (share < leak_share_pct and len(old) < leak_min_idle):
            continue
        sev = (
            Severity.CRITICAL
            if share >= leak_share_pct and cap.usage_pct >= capacity_crit_pct
            else Severity.WARNING
        )
        oldest = max(s.state_age_s or 0 for s in members)
        findings.append(
            Finding(
                sev,
                "idle_connections",
                app,
                f"{len(members)} idle connections ({share:.0f}% of usable slots), {len(old)} idle for over "
                f"{_dur(leak_idle_s)}, the oldest for {_dur(oldest)}: a pool larger than its load, or "
                "connections leaked (never returned or closed)",
                "cap the application's pool (pool_size/max_overflow) and recycle idle connections "
                "(pool_recycle); set idle_session_timeout (PostgreSQL 14+) or put PgBouncer in front",
                _pids(members),
            )
        )

    by_pid = {s.pid: s for s in every}
    waits = waits_for(data.activity)  # the waits-for graph `locks` draws: the same root blockers
    for app, members in _by_app(sessions, lambda s: s.cls == "blocked").items():
        longest = max(s.query_age_s or 0 for s in members)
        holders = sorted({pid for s in members for pid in s.blocked_by})
        roots = root_names(root_blockers(waits, above=_pids(members)), by_pid)
        findings.append(
            Finding(
                Severity.CRITICAL if longest >= blocked_crit_s else Severity.WARNING,
                "blocked",
                app,
                f"{len(members)} session(s) waiting on locks for up to {_dur(longest)}, blocked by pid(s) "
                f"{', '.join(map(str, holders))}" + (f"; root blocker(s): {roots}" if roots else ""),
                "run `pgdoctor locks` for the blocking tree and the root blocker",
                _pids(members),
            )
        )

    for s in sessions:
        if s.xmin_age is None or s.xact_age_s is None or s.xact_age_s < xmin_warn_s:
            continue
        findings.append(
            Finding(
                Severity.CRITICAL if s.xmin_age >= xmin_crit_age else Severity.WARNING,
                "xmin_horizon",
                s.application_name or "(none)",
                f"pid {s.pid} has held a snapshot for {_dur(s.xact_age_s)} ({s.xmin_age} transactions "
                "old): VACUUM cannot remove rows that died since",
                "end that transaction; bound transactions with idle_in_transaction_session_timeout or "
                "statement_timeout",
                (s.pid,),
            )
        )

    hidden = [s for s in sessions if not s.visible]
    if hidden and not data.server.can_read_all_stats:
        findings.append(
            insufficient_privilege(
                data.server.current_user,
                f"{len(hidden)} session(s) of other roles show only pid, user, database and application: "
                f"role {data.server.current_user} cannot read their state or query",
                _pids(hidden),
            )
        )

    return ConnectionsReport(
        server=data.server,
        by=by,
        capacity=cap,
        groups=group_sessions(sessions, by),
        sessions=sorted(sessions, key=lambda s: (group_key(s, by), s.cls, s.pid)),
        background=sorted(background, key=lambda s: (s.backend_type, s.pid)),
        findings=sort_findings(findings),
    )
