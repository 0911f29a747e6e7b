"""pg_stat_activity, read once: one row type and one query that every command shares.

`connections` classifies every row; `locks` keeps the sessions that wait on a lock and the ones they wait
on; `slow-queries` lists the statements running now. A snapshot holds the one read, so all three describe
the same instant. Ages are seconds measured by the server's clock at the read; a role without
pg_read_all_stats sees other roles' sessions with most columns None and query '<insufficient
privilege>'.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgdoctor import queries
from pgdoctor.collect import ranges
from pgdoctor.db import Database
from pgdoctor.secrets import mask_rows

QUERIES = {"activity": queries.SERVER_VERSIONS}


@dataclass(frozen=True, slots=True)  # slots: 100,000 rows take a third of the memory
class ActivityRow:
    """One backend of pg_stat_activity (pgdoctor's own left out).

    The columns every supported server has come first; a column a newer PostgreSQL added has a default,
    which is what an older server (or an older snapshot) gives. Every int is bounded (`collect.ranges`),
    so a snapshot's 100,000 rows are checked while msgspec decodes them.
    """

    pid: ranges.Pid
    backend_type: ranges.SharedStr  # '' when hidden from this role
    datname: ranges.SharedStr | None
    usename: ranges.SharedStr | None
    application_name: ranges.SharedStr
    client_addr: ranges.SharedStr | None
    client_hostname: ranges.SharedStr | None
    state: ranges.SharedStr | None
    wait_event_type: ranges.SharedStr | None
    wait_event: ranges.SharedStr | None  # for a lock wait: the lock type (relation, tuple, transactionid, …)
    backend_age_s: float | None  # since the backend started (connection age)
    xact_age_s: float | None
    query_age_s: float | None  # for an active session: how long its statement has run
    state_age_s: float | None
    xmin_age: ranges.Int64 | None  # age(backend_xmin) in transactions
    query: ranges.SharedStr | None
    # pg_blocking_pids(), asked for sessions that wait on a lock and for those whose wait is hidden from
    # this role; 0 stands for a prepared transaction
    blocked_by: list[ranges.BlockerPid]
    query_id: ranges.Int64 | None = None  # PostgreSQL 14+: pg_stat_statements' queryid (compute_query_id)


def collect_activity(db: Database) -> list[ActivityRow]:
    """Every backend but pgdoctor's own, by pid; passwords in query texts masked."""
    sql = queries.load("activity", queries.server_version(db.server_version_num))
    return mask_rows(db.rows(sql, ActivityRow))  # no password in any output or snapshot
