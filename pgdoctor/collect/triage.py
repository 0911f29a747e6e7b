"""Everything `pgdoctor triage` reads, on one connection: the server and pg_stat_activity once, for all
of connections, locks and slow-queries (as a snapshot reads them), then what locks and slow-queries add.

Cost: `connections` alone reads the role, the settings and pg_stat_activity (three round trips). Triage
adds pg_stat_statements' availability (a catalog read), one read of its top statements by total time
(the same SQL as `slow-queries`), its info row (extension 1.9+), and pg_locks only when a session waits
on a lock (as `locks` does). With `--pgbouncer-dsn`, PgBouncer's console is read right after the
backends (its own connection: PgBouncer is another program), so the two views are as close in time as
can be.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pgdoctor.collect import connections, locks, statements
from pgdoctor.collect.activity import collect_activity
from pgdoctor.collect.connections import ConnectionsData
from pgdoctor.collect.locks import LocksData
from pgdoctor.collect.server import collect_server
from pgdoctor.collect.statements import StatementsData
from pgdoctor.db import Database

if TYPE_CHECKING:  # PgBouncer's collector is imported only when a run reads PgBouncer
    from pgdoctor.collect.pgbouncer import PgBouncerData

# every setting any of the three analyses reads, read once
SETTINGS = tuple(sorted({*connections.SETTINGS, *locks.SETTINGS, *statements.SETTINGS}))

# the order and number of statements triage reads from pg_stat_statements (slow-queries' defaults)
SORT = "total"
LIMIT = 10


@dataclass(frozen=True)
class TriageData:
    connections: ConnectionsData
    locks: LocksData
    statements: StatementsData
    pgbouncer: PgBouncerData | None = None
    # --pgbouncer-dsn given but its console could not be read: why (the PostgreSQL side is still reported)
    pgbouncer_error: str | None = None


def collect(db: Database) -> TriageData:
    """The three datasets of one server from one read of its settings and pg_stat_activity."""
    server = collect_server(db, SETTINGS)
    activity = collect_activity(db)
    return TriageData(
        connections=connections.capture(db, server, activity),
        locks=locks.from_activity(db, server, activity, details=True, summary=False),
        statements=statements.from_activity(db, server, activity, sort=SORT, limit=LIMIT),
    )


def with_pgbouncer(data: TriageData, dsn: str | None, timeout_s: float) -> TriageData:
    """Add PgBouncer's console at `dsn`; the PostgreSQL server behind it is the one triage read."""
    from pgdoctor.collect.pgbouncer import collect_pgbouncer

    pooler = collect_pgbouncer(dsn, timeout_s, data.connections)
    return dataclasses.replace(data, pgbouncer=pooler)
