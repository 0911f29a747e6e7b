"""`connections --sample`: pg_stat_activity read again and again on the one connection, kept as changes.

Each tick reads, per client session, only what changes the picture (state, lock wait, transaction and
state start; queries/sample_tick), and who the session is only for sessions new since the previous tick.
The sampler keeps the last state of every session and hands on only what changed: new sessions, changed
states and the pids gone. So a snapshot stores a sample compactly, and the analysis
(pgdoctor/analyze/sample.py) works on changes, the same live and from a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pgdoctor import queries
from pgdoctor.collect.server import ServerInfo, collect_server
from pgdoctor.db import Database

CLIENT_BACKEND = "client backend"  # pg_stat_activity.backend_type of an application's session
QUERIES = {"sample_tick": queries.SERVER_VERSIONS, "sample_xacts": queries.SERVER_VERSIONS}

# Settings the sample's analysis reads (capacity: does the server have free slots).
SETTINGS = (
    "max_connections",
    "superuser_reserved_connections",
    "reserved_connections",  # PostgreSQL 16+
    "idle_in_transaction_session_timeout",
)
# Time between ticks: 10 reads a second. benchmarks/sample.py measures one tick at 1,000 sessions against
# the bare pg_stat_activity query and pgdoctor's CPU over a 30 s sample (benchmarks/README.md).
INTERVAL_S = 0.1
# pg_stat_database's transaction counters are read this often (and at the end): they move when a
# backend reports its statistics, at most once a second ("The Cumulative Statistics System").
XACTS_EVERY_S = 1.0
# New sessions are those started since the previous tick less this margin: a backend shows in
# pg_stat_activity only once it has authenticated, a little after its backend_start.
NEW_MARGIN_S = 1.0


@dataclass(frozen=True)
class SessionSeen:
    """Who a client session is, read once, when it is first seen."""

    pid: int
    backend_start: float  # seconds since the epoch (with pid: the session's identity)
    datname: str | None
    usename: str | None
    application_name: str
    client_addr: str | None  # None: a local socket (or hidden from this role)


@dataclass(frozen=True)
class StateSeen:
    """A client session's state when it changed (or when the session was first seen)."""

    pid: int
    state: str | None
    blocked: bool  # waiting on a heavyweight lock
    xact_start: float | None  # seconds since the epoch; None: no transaction open
    state_change: float | None


@dataclass(frozen=True)
class XactCount:
    """Transactions ended in one database so far (pg_stat_database xact_commit + xact_rollback)."""

    datname: str
    xacts: int


@dataclass(frozen=True)
class Tick:
    at: float  # the server's statement_timestamp(), seconds since the epoch
    new: list[SessionSeen] = field(default_factory=list)
    changed: list[StateSeen] = field(default_factory=list)  # new sessions' first state too
    gone: list[int] = field(default_factory=list)
    xacts: list[XactCount] | None = None  # read at this tick (every XACTS_EVERY_S), else None
    own_xacts: int = 0  # pgdoctor's own transactions so far (each of its reads is one), when xacts read


@dataclass(frozen=True)
class SampleData:
    """A whole sample: the server's settings and every tick's changes."""

    server: ServerInfo
    database: str  # where pgdoctor's own reads count as transactions
    interval_s: float
    duration_s: float  # asked for
    interrupted: bool  # ended early (Ctrl-C): the ticks are what was sampled until then
    ticks: list[Tick]


class Sampler:
    """Reads ticks on one connection; remembers each session's last state so it hands on only changes."""

    def __init__(self, db: Database) -> None:
        self.db = db
        version = queries.server_version(db.server_version_num)
        self.tick_sql = queries.load("sample_tick", version)
        self.xacts_sql = queries.load("sample_xacts", version)
        self.known: dict[int, tuple[Any, ...]] = {}  # pid -> (state, blocked, xact_start, state_change)
        self.ignored: dict[int, float] = {}  # pid -> backend_start of a backend that is no client
        self.starts: dict[int, float] = {}  # pid -> backend_start of the session known under it
        self.ask_again: set[int] = set()  # seen without identity (started just before the margin)
        self.last_at: float | None = None
        self.reads = 0
        self.last_xacts_at: float | None = None

    def server(self) -> ServerInfo:
        info = collect_server(self.db, SETTINGS)
        self.reads += 2
        return info

    def database(self) -> str:
        self.reads += 1
        return str(self.db.tuples("SELECT current_database()::text")[0][0])

    def tick(self, force_xacts: bool = False) -> Tick:
        since = 0.0 if self.last_at is None else self.last_at - NEW_MARGIN_S
        rows = self.db.tuples(self.tick_sql, {"since": since, "ask": sorted(self.ask_again)})
        self.reads += 1
        at = float(rows[0][0])
        new: list[SessionSeen] = []
        changed: list[StateSeen] = []
        present: set[int] = set()
        seen_pids = {row[1] for row in rows}
        known = self.known
        ask_again: set[int] = set()
        ignored = self.ignored
        for _, pid, state, blocked, xact_start, state_change, start, dat, user, app, addr, kind in rows:
            if pid is None or (pid in ignored and (start is None or ignored[pid] == start)):
                continue
            if start is not None and kind != CLIENT_BACKEND:
                ignored[pid] = start  # autovacuum, WAL senders, workers: not an application's session
                continue
            ignored.pop(pid, None)  # a client's pid that a background process had before
            now = (state, bool(blocked), xact_start, state_change)
            if start is not None and dat is None:
                # still authenticating (PostgreSQL 18 shows such backends): who it is comes later
                ask_again.add(pid)
                continue
            if start is not None and self.starts.get(pid) != start:
                # a session not seen before (or a new one with a reused pid): who it is, and its state
                self.starts[pid] = start
                new.append(SessionSeen(pid, start, dat, user, app or "", addr))
            elif pid not in known:
                ask_again.add(pid)  # seen without who it is: ask at the next tick
                continue
            elif known[pid] == now:
                present.add(pid)
                continue
            present.add(pid)
            known[pid] = now
            changed.append(StateSeen(pid, state, bool(blocked), xact_start, state_change))
        gone = sorted(pid for pid in known if pid not in present)
        for pid in [p for p in ignored if p not in seen_pids]:
            del ignored[pid]
        for pid in gone:
            del known[pid]
            self.starts.pop(pid, None)
        self.ask_again = ask_again
        self.last_at = at
        xacts = None
        own = 0
        if force_xacts or self.last_xacts_at is None or at - self.last_xacts_at >= XACTS_EVERY_S:
            own = self.reads  # the reads before this one; this one counts at the next reading
            xacts = [XactCount(d, int(n)) for d, n in self.db.tuples(self.xacts_sql)]
            self.reads += 1
            self.last_xacts_at = at
        return Tick(at, new, changed, gone, xacts, own)
