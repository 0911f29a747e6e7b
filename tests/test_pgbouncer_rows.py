"""PgBouncer's console rows read by column name (other versions' column sets), and the finding rules, on
synthetic rows: no server needed."""

from __future__ import annotations

from typing import Any, cast

import pytest

from pgdoctor.analyze.pgbouncer import analyze
from pgdoctor.collect.pgbouncer import (
    COMMANDS,
    ConnRow,
    Console,
    DatabaseRow,
    PgBouncerData,
    PoolRow,
    age_of,
    from_columns,
)
from pgdoctor.errors import PgDoctorError

# SHOW POOLS of PgBouncer 1.18 (as read from Debian's package)
POOL_COLUMNS = [
    "database", "user", "cl_active", "cl_waiting", "cl_active_cancel_req", "cl_waiting_cancel_req",
    "sv_active", "sv_active_cancel", "sv_being_canceled", "sv_idle", "sv_used", "sv_tested", "sv_login",
    "maxwait", "maxwait_us", "pool_mode",
]  # fmt: skip
POOL_ROW = ("app", "web", 3, 5, 0, 0, 4, 0, 0, 0, 0, 0, 0, 7, 500000, "transaction")


def test_a_newer_column_is_ignored() -> None:
    row = from_columns(PoolRow, [*POOL_COLUMNS, "prepared_statements"], (*POOL_ROW, 12))
    assert (row.cl_waiting, row.sv_active, row.maxwait_s, row.pool_mode) == (5, 4, 7.5, "transaction")


def test_an_older_pgbouncer_lacks_optional_columns() -> None:
    keep = [i for i, n in enumerate(POOL_COLUMNS) if n not in ("maxwait_us", "pool_mode", "sv_active_cancel")]
    row = from_columns(PoolRow, [POOL_COLUMNS[i] for i in keep], tuple(POOL_ROW[i] for i in keep))
    assert (row.maxwait_us, row.pool_mode, row.sv_active_cancel, row.maxwait_s) == (0, None, 0, 7.0)


def test_a_missing_key_column_is_one_error() -> None:
    with pytest.raises(PgDoctorError, match="lacks column"):
        from_columns(PoolRow, POOL_COLUMNS[1:], POOL_ROW[1:])


def test_the_console_is_sent_nothing_but_show() -> None:
    console = Console(cast(Any, None), 1.0, "")
    assert "PAUSE" not in COMMANDS and "SET" not in COMMANDS
    for command in ("PAUSE", "KILL app", "RELOAD", "SET x = 1"):
        with pytest.raises(ValueError, match="sends only SHOW"):
            console.show(command)


def test_ages_from_pgbouncer_times() -> None:
    assert age_of("2024-05-01 10:00:00 UTC", 1714557610.0) == 10.0
    assert age_of("", 0.0) is None and age_of("garbage", 0.0) is None


def data(**kw: Any) -> PgBouncerData:
    base: dict[str, Any] = {
        "version": "PgBouncer 1.23.1",
        "pools": [],
        "databases": [],
        "clients": [],
        "servers": [],
        "config": {"max_client_conn": "100", "default_pool_size": "20", "query_wait_timeout": "120"},
        "stats": [],
        "lists": {},
    }
    return PgBouncerData(**{**base, **kw})


def test_rules_on_synthetic_rows() -> None:
    pools = [
        from_columns(PoolRow, [*POOL_COLUMNS, "new_col"], (*POOL_ROW, "x")),  # queue, full, waits 7.5 s
        PoolRow("idle", "web", cl_active=1, sv_idle=1),
        PoolRow("sess", "web", cl_active=9, sv_active=5, pool_mode="session"),
        PoolRow("big", "web", cl_active=1, sv_active=3, sv_idle=3),  # 6 servers of a pool of 4 + 2 reserve
    ]
    databases = [
        DatabaseRow("app", pool_size=4, reserve_pool=0),
        DatabaseRow("sess", pool_size=5),
        DatabaseRow("big", pool_size=4, reserve_pool=2),
        DatabaseRow("idle", pool_size=4, paused=1, disabled=1),
    ]
    clients = [ConnRow(database="app", user="web", state="active", addr="10.0.0.1") for _ in range(85)]
    report = analyze(data(pools=pools, databases=databases, clients=clients))
    codes = {(f.code, f.subject, f.severity.value) for f in report.findings}
    assert ("clients_waiting", "app/web", "warning") in codes  # 7.5 s of 120: not yet near it
    assert ("pool_full", "app/web", "warning") in codes
    assert ("session_mode_many_clients", "sess/web", "warning") in codes
    assert ("reserve_in_use", "big/web", "warning") in codes
    assert ("paused", "idle", "critical") in codes and ("disabled", "idle", "warning") in codes
    assert ("client_limit", "pgbouncer", "warning") in codes  # 85 of 100
    # the admin command that applies, as the finding's action; none where no command helps
    actions = {f.code: f.action for f in report.findings}
    assert (actions["paused"], actions["disabled"]) == ("RESUME idle;", "ENABLE idle;")
    assert actions["client_limit"] == actions["session_mode_many_clients"] == "RELOAD;"
    assert actions["clients_waiting"] == actions["pool_full"] == actions["reserve_in_use"] == ""
    # near query_wait_timeout: critical
    near = analyze(data(pools=pools[:1], databases=databases, config={"query_wait_timeout": "10"}))
    assert [f.severity.value for f in near.findings if f.code == "clients_waiting"] == ["critical"]
    assert not [f for f in report.findings if f.subject in ("idle/web",) and f.code not in ("paused",)]
