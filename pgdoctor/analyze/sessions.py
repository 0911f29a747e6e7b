"""Sessions: every pg_stat_activity row as pgdoctor reports it (its class, its client), and their
grouping by application, user, database or client. `connections` (over SQL or the process list) and
`pgbouncer` build on them."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from pgdoctor.analyze.common import CLIENT_BACKEND, HIDDEN_QUERY
from pgdoctor.collect.activity import ActivityRow

CLASSES = ("active", "idle", "idle_in_transaction", "idle_in_transaction_aborted", "blocked", "other")
GROUP_BY = ("application", "user", "database", "client")
IDLE_IN_XACT = ("idle_in_transaction", "idle_in_transaction_aborted")

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


# Not frozen (treat it as if it were): built once per backend, 100,000 times for a large snapshot, and a
# frozen dataclass's __init__ costs three times as much (object.__setattr__ per field).
@dataclass(slots=True, eq=False)
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
    """The session a row shows (classify, client_of and backend_type_of, inlined: it runs per row)."""
    backend_type = row.backend_type or (CLIENT_BACKEND if row.datname and row.usename else "unknown")
    if backend_type != CLIENT_BACKEND:
        cls = backend_type
    elif row.wait_event_type == "Lock":
        cls = "blocked"
    else:
        cls = _STATE_CLASS.get(row.state or "", "other")
    wait = row.wait_event
    return Session(
        row.pid,
        backend_type,
        row.application_name,
        row.usename,
        row.datname,
        row.client_hostname
        or row.client_addr
        or ("local socket" if row.backend_type == CLIENT_BACKEND else ""),  # hidden rows: none shown
        cls,
        row.state,
        f"{row.wait_event_type}:{wait}" if wait else row.wait_event_type,
        row.state_age_s,
        row.xact_age_s,
        row.query_age_s,
        row.xmin_age,
        row.query,
        tuple(row.blocked_by),
        row.query != HIDDEN_QUERY,
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


def group_keys(sessions: Sequence[Session], by: str) -> list[str]:
    """Each session's group key, in order (computed once per analysis, used for grouping and sorting)."""
    if by == "application" and not any(s.via_pgbouncer for s in sessions):
        return [s.application_name or "(none)" for s in sessions]
    return [group_key(s, by) for s in sessions]


def group_sessions(sessions: Sequence[Session], by: str, keys: Sequence[str] | None = None) -> list[Group]:
    buckets: dict[str, list[Session]] = defaultdict(list)
    for key, s in zip(keys if keys is not None else group_keys(sessions, by), sessions, strict=True):
        buckets[key].append(s)
    groups = []
    for key, members in buckets.items():
        counts = dict.fromkeys(CLASSES, 0)
        for cls, n in Counter([s.cls for s in members]).items():  # counted in C: 100,000 sessions
            counts[cls] += n  # a class that is not a client's fails here, as it did counting one by one
        idle_xact = [s.state_age_s for s in members if s.cls in IDLE_IN_XACT and s.state_age_s is not None]
        xacts = [s.xact_age_s for s in members if s.xact_age_s is not None]
        groups.append(
            Group(
                key=key,
                total=len(members),
                counts=counts,
                oldest_idle_in_transaction_s=max(idle_xact, default=None),
                oldest_xact_s=max(xacts, default=None),
                pids=tuple(sorted([s.pid for s in members])),
            )
        )
    return sorted(groups, key=lambda g: (-g.total, g.key))
