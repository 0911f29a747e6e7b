"""Ranges some values must keep beyond their type, declared on the row types (msgspec checks them as a
snapshot is read; a live server gives nothing else)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

# The integers a snapshot may hold: 64 bits, signed (PostgreSQL's bigint: pg_stat_statements' counters
# and queryid are int8) or unsigned (PgBouncer's counters); anything wider was not written by pgdoctor.
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
BIGINT_MAX = 2**63 - 1  # the widest a PostgreSQL column holds (msgspec's bounds stop at int64 too)

Int64 = Annotated[int, Meta(ge=INT_MIN, le=BIGINT_MAX)]
Pid = Annotated[int, Meta(ge=1, le=BIGINT_MAX)]  # a process id
BlockerPid = Annotated[int, Meta(ge=0, le=BIGINT_MAX)]  # pg_blocking_pids(): 0 is a prepared transaction
VersionNum = Annotated[int, Meta(ge=90000, le=BIGINT_MAX)]  # server_version_num: PostgreSQL 9.0 or later
