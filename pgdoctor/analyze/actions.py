"""The SQL an operator could run for a finding (`Finding.action`): pgdoctor prints it and never runs it.

An action is one complete statement per line: first what frees the slots or the lock now, then what
prevents a recurrence (`ALTER ROLE … IN DATABASE … SET …`). A statement that ends sessions names them
by pid AND by what the finding saw of them, so it ends exactly the sessions the finding named and no
other: a session that has since changed state, a pid reused by a new backend, another application's
session, pgdoctor's own (`application_name = 'pgdoctor'`) and the operator's (`pg_backend_pid()`) are
spared.

Ages are what a read gives (seconds by the server's clock at the read, live or in a snapshot), so the
guards are "at least as old as at the read": `state_change <= now() - interval '<age> seconds'` with the
youngest named session's age, floored to the millisecond. Every named session still in the state the
finding saw passes it whenever the statement is run; a session that left that state and came back since
has a newer `state_change` and is spared (as long as the statement runs within that age of the read).
The finding's threshold would be wrong here: `idle_connections` fires on a count or a share of slots too,
and then names sessions idle for less than `--leak-idle-age`.

Names are quoted by `pgdoctor.analyze.quoting`: the same text whatever `standard_conforming_strings` is,
unchanged by every text format.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from pgdoctor import APPLICATION_NAME
from pgdoctor.analyze.common import CLIENT_BACKEND
from pgdoctor.analyze.quoting import identifier, literal
from pgdoctor.analyze.sessions import Session

if TYPE_CHECKING:  # types only: `connections` imports this module on every run, not these
    from pgdoctor.analyze.slow_query_rows import Running
    from pgdoctor.collect.activity import ActivityRow
    from pgdoctor.collect.server import ServerInfo

# What pgdoctor puts in each of its statements (pgdoctor.db.MARKER): an idle pgdoctor session (another
# run: `--sample`, a watch) carries no application_name between its reads, but its last query has this.
PGDOCTOR_MARKER = "/* pgdoctor */"
IDLE_IN_XACT_STATES = ("idle in transaction", "idle in transaction (aborted)")
# idle_session_timeout exists from PostgreSQL 14 ("Client Connection Defaults").
IDLE_SESSION_TIMEOUT_MIN_VERSION = 140000


def _seconds(age_s: float) -> str:
    """An age floored to the millisecond, as an interval literal."""
    return f"interval '{math.floor(max(age_s, 0.0) * 1000) / 1000:.3f} seconds'"


def _at_least(column: str, ages: list[float | None]) -> str | None:
    """`column` at least as long ago as the youngest of `ages` (None if one is unknown)."""
    if not ages or None in ages:
        return None
    return f"{column} <= now() - {_seconds(min(a for a in ages if a is not None))}"


def _equals_one_of(column: str, values: set[str | None]) -> str | None:
    """`column` one of `values` (None if a value is unknown: no condition then)."""
    if not values or None in values:
        return None
    lits = [literal(v) for v in sorted(v for v in values if v is not None)]
    return f"{column} = {lits[0]}" if len(lits) == 1 else f"{column} IN ({', '.join(lits)})"


def _select(function: str, conditions: Iterable[str | None]) -> str:
    where = [c for c in conditions if c]
    return f"SELECT {function}(pid) FROM pg_stat_activity WHERE {' AND '.join(where)};"


def ends_only(statement: str, pid: int) -> bool:
    """The statement (one of `end_session`'s) cancels or terminates this one session and no other."""
    return statement.startswith("SELECT pg_") and f" WHERE pid = {pid} AND " in statement


def is_prevention(statement: str) -> bool:
    """A statement of `prevent`: it changes what the server will do, not who is connected now."""
    return statement.startswith("ALTER ROLE ")


def is_pgdoctor(s: Session | ActivityRow | Running) -> bool:
    """A session of pgdoctor (this run's own is never read): named so, or its last statement is one."""
    return s.application_name == APPLICATION_NAME or PGDOCTOR_MARKER in (s.query or "")


def terminate_sessions(sessions: Sequence[Session]) -> str:
    """End exactly these idle (or idle-in-transaction) client sessions: by pid, application, user,
    database and state, each still in that state at least as long as at the read (and, idle in a
    transaction, in the same transaction); never pgdoctor's own or the operator's session."""
    pids: list[int] = []
    apps: set[str | None] = set()
    users: set[str | None] = set()
    dbs: set[str | None] = set()
    states: set[str | None] = set()
    state_ages: list[float | None] = []
    xact_ages: list[float | None] = []
    for s in sessions:  # one pass: a leak can name tens of thousands of sessions
        if is_pgdoctor(s):
            continue
        pids.append(s.pid)
        apps.add(s.application_name)
        users.add(s.usename)
        dbs.add(s.datname)
        states.add(s.state)
        state_ages.append(s.state_age_s)
        xact_ages.append(s.xact_age_s)
    if not pids:
        return ""
    in_xact = states <= set(IDLE_IN_XACT_STATES)
    return _select(
        "pg_terminate_backend",
        [
            f"pid IN ({', '.join(map(str, sorted(pids)))})",
            _equals_one_of("application_name", apps),
            _equals_one_of("usename", users),
            _equals_one_of("datname", dbs),
            _equals_one_of("state", states),
            _at_least("state_change", state_ages),
            _at_least("xact_start", xact_ages) if in_xact else None,
            f"backend_type = {literal(CLIENT_BACKEND)}",
            "pid <> pg_backend_pid()",
        ],
    )


def cancel_statements(running: Sequence[Running]) -> str:
    """Cancel exactly these running statements: by pid, application, user and database, each still
    running a statement that began at least as long ago as at the read (so the same statement); the
    sessions stay connected. Never pgdoctor's."""
    named = [
        r
        for r in running
        if r.application_name != APPLICATION_NAME and PGDOCTOR_MARKER not in (r.query or "")
    ]
    if not named:
        return ""
    return _select(
        "pg_cancel_backend",
        [
            f"pid IN ({', '.join(map(str, sorted(r.pid for r in named)))})",
            _equals_one_of("application_name", {r.application_name for r in named}),
            _equals_one_of("usename", {r.user for r in named}),
            _equals_one_of("datname", {r.database for r in named}),
            _equals_one_of("state", {r.state for r in named}),
            _at_least("query_start", [r.duration_s for r in named]),
            f"backend_type = {literal(CLIENT_BACKEND)}",
            "pid <> pg_backend_pid()",
        ],
    )


def end_session(row: ActivityRow) -> str:
    """End one session that holds others up or holds the xmin horizon back, only while it is still the
    same session (backend_start) in the same transaction (xact_start), or for a running statement the
    same statement (query_start): terminate it when it sits idle (cancelling does nothing there), cancel
    the statement when it runs one. Nothing for a prepared transaction, pgdoctor or a hidden state."""
    from pgdoctor.analyze.lock_graph import PREPARED

    if row.pid == PREPARED or is_pgdoctor(row) or row.state is None:
        return ""
    running = row.state not in (*IDLE_IN_XACT_STATES, "idle")
    return _select(
        "pg_cancel_backend" if running else "pg_terminate_backend",
        [
            f"pid = {row.pid}",
            _equals_one_of("application_name", {row.application_name}),
            _at_least("backend_start", [row.backend_age_s]),
            _at_least("xact_start", [row.xact_age_s]) if row.xact_age_s is not None else None,
            _at_least("query_start", [row.query_age_s]) if running else None,
            "pid <> pg_backend_pid()",
        ],
    )


def end_sessions(pids: Iterable[int], rows: Mapping[int, ActivityRow]) -> str:
    """`end_session` for each of these pids (root blockers) found in `rows`, one statement per line, in pid
    order."""
    return lines([end_session(rows[p]) for p in sorted(set(pids)) if p in rows])


def short(pid: int, state: str | None) -> str:
    """The one-line statement `locks` shows beside a root blocker (the tree's `action`): cancel a
    running statement; terminate a session that sits idle (in a transaction, or holding session-level
    advisory locks), since cancel does nothing there."""
    from pgdoctor.analyze.lock_graph import PREPARED

    if pid == PREPARED:
        return "SELECT gid, prepared, owner FROM pg_prepared_xacts; -- then ROLLBACK PREPARED '<gid>'"
    if state in (*IDLE_IN_XACT_STATES, "idle"):
        return f"SELECT pg_terminate_backend({pid});"
    if state is None:
        return (
            f"SELECT pg_cancel_backend({pid}); -- its state is hidden from this role; if it is idle "
            f"(in transaction): SELECT pg_terminate_backend({pid});"
        )
    return f"SELECT pg_cancel_backend({pid});"


def _timeout_value(seconds: float) -> str:
    return f"'{seconds:.0f}s'" if seconds == int(seconds) else f"'{math.ceil(seconds * 1000)}ms'"


def prevent(
    sessions: Iterable[Session | ActivityRow], setting: str, seconds: float, server: ServerInfo
) -> list[str]:
    """`ALTER ROLE … IN DATABASE … SET setting = …` for each role and database of these sessions, so the
    server ends such sessions after `seconds` (new sessions of that role in that database; an
    administrator resets it with `ALTER ROLE … IN DATABASE … RESET setting`). None when the server
    cannot (idle_session_timeout before PostgreSQL 14), already does as soon, or a name is hidden; none
    for PgBouncer's server connections either (its own server_idle_timeout governs them)."""
    if seconds <= 0:
        return []
    if setting == "idle_session_timeout" and server.version_num < IDLE_SESSION_TIMEOUT_MIN_VERSION:
        return []
    current = server.setting(setting)  # milliseconds, 0 = off
    if current not in (None, "", "0") and float(current) <= seconds * 1000:
        return []
    found: set[tuple[str | None, str | None]] = set()
    for s in sessions:
        if isinstance(s, Session) and s.via_pgbouncer:
            return []
        if not is_pgdoctor(s):
            found.add((s.usename, s.datname))
    pairs = sorted(found, key=lambda p: (p[0] or "", p[1] or ""))
    if any(user is None or db is None for user, db in pairs):
        return []
    return [
        f"ALTER ROLE {identifier(user or '')} IN DATABASE {identifier(db or '')} SET {setting} = "
        f"{_timeout_value(seconds)};"
        for user, db in pairs
    ]


def lines(*statements: str | Sequence[str]) -> str:
    """The action field: statements one per line, empty ones left out."""
    out: list[str] = []
    for s in statements:
        out.extend([s] if isinstance(s, str) else s)
    return "\n".join(s for s in out if s)
