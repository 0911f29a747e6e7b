"""The process-title parser of `connections --ps` on real titles (copied from `/proc/PID/cmdline` of
PostgreSQL 15 and 18 backends), and the doctests of the pure functions. No server needed."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

import pgdoctor.analyze.connections_ps
import pgdoctor.collect.ps_config
import pgdoctor.collect.ps_titles
from pgdoctor.analyze.connections_ps import activity_row, analyze_ps
from pgdoctor.collect.ps import PsBackend, PsData, PsServer
from pgdoctor.collect.ps_config import ConfigRead, argv_settings, parse_postmaster_pid, read_config
from pgdoctor.collect.ps_titles import CLIENT_BACKEND, Title, cluster_name_of, parse_cmdline, parse_title


@pytest.mark.parametrize(
    "module",
    [pgdoctor.collect.ps_titles, pgdoctor.collect.ps_config, pgdoctor.analyze.connections_ps],
)
def test_doctests(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert result.attempted > 0
    assert result.failed == 0


# Raw /proc/PID/cmdline contents, NUL padding included, as read from PostgreSQL 15 and 18.
PG15_MAIN = [
    (b"postgres: main: checkpointer \x00\x00\x00\x00\x00\x00", "checkpointer"),
    (b"postgres: main: background writer \x00\x00\x00", "background writer"),
    (b"postgres: main: walwriter \x00\x00\x00\x00\x00\x00\x00", "walwriter"),
    (b"postgres: main: autovacuum launcher \x00\x00\x00", "autovacuum launcher"),
    (b"postgres: main: logical replication launcher \x00\x00", "logical replication launcher"),
]
PG18_PLAIN = [
    (b"postgres: io worker 2\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", "io worker"),
    (b"postgres: checkpointer \x00\x00\x00\x00", "checkpointer"),
    (b"postgres: walsender postgres postgres [local] \x00\x00", "walsender"),
    (b"postgres: walsender repl 10.1.2.3(40312) streaming 0/3000148\x00", "walsender"),
    (b"postgres: autovacuum worker shop\x00\x00", "autovacuum worker"),
    (b"postgres: parallel worker for PID 5975\x00\x00", "parallel worker"),
]


@pytest.mark.parametrize(("raw", "kind"), PG15_MAIN)
def test_background_with_cluster_name(raw: bytes, kind: str) -> None:
    titles = [" ".join(parse_cmdline(r)) for r, _ in PG15_MAIN]
    assert cluster_name_of(titles) == "main"  # read off the checkpointer's title
    assert parse_title(" ".join(parse_cmdline(raw)), "main") == Title(kind=kind)


@pytest.mark.parametrize(("raw", "kind"), PG18_PLAIN)
def test_background_without_cluster_name(raw: bytes, kind: str) -> None:
    assert parse_title(" ".join(parse_cmdline(raw))) == Title(kind=kind)


@pytest.mark.parametrize(
    ("raw", "cluster", "expected"),
    [
        (
            b"postgres: main: postgres postgres [local] idle\x00\x00\x00",
            "main",
            Title(CLIENT_BACKEND, "postgres", "postgres", None, None, "idle", False),
        ),
        (
            b"postgres: main: postgres postgres [local] idle in transaction\x00\x00",
            "main",
            Title(CLIENT_BACKEND, "postgres", "postgres", None, None, "idle in transaction", False),
        ),
        (
            b"postgres: main: postgres postgres [local] idle in transaction (aborted)\x00\x00",
            "main",
            Title(CLIENT_BACKEND, "postgres", "postgres", None, None, "idle in transaction (aborted)", False),
        ),
        (
            b"postgres: main: postgres postgres ::1(57192) idle in transaction\x00\x00",
            "main",
            Title(CLIENT_BACKEND, "postgres", "postgres", "::1", 57192, "idle in transaction", False),
        ),
        (
            b"postgres: main: postgres postgres [local] SELECT waiting\x00\x00",
            "main",
            Title(CLIENT_BACKEND, "postgres", "postgres", None, None, "SELECT", True),
        ),
        (
            b"postgres: main: postgres postgres [local] SELECT\x00\x00\x00",
            "main",
            Title(CLIENT_BACKEND, "postgres", "postgres", None, None, "SELECT", False),
        ),
        (
            b"postgres: app shop 2001:db8::17(50432) UPDATE waiting\x00",
            None,
            Title(CLIENT_BACKEND, "app", "shop", "2001:db8::17", 50432, "UPDATE", True),
        ),
        (
            b"postgres: app shop 10.0.0.7(51234) COPY\x00",
            None,
            Title(CLIENT_BACKEND, "app", "shop", "10.0.0.7", 51234, "COPY", False),
        ),
        (
            b"postgres: app shop web-3.internal(40000) idle\x00",  # log_hostname = on
            None,
            Title(CLIENT_BACKEND, "app", "shop", "web-3.internal", 40000, "idle", False),
        ),
        (
            b"postgres: app my shop [local] idle\x00",  # a database name with a space
            None,
            Title(CLIENT_BACKEND, "app", "my shop", None, None, "idle", False),
        ),
        (
            b"postgres: postgres postgres [local] \x00",  # update_process_title = off
            None,
            Title(CLIENT_BACKEND, "postgres", "postgres", None, None, None, False),
        ),
        (
            b"postgres: 15/main: app shop 127.0.0.1(5555) idle\x00",  # Debian's cluster_name
            "15/main",
            Title(CLIENT_BACKEND, "app", "shop", "127.0.0.1", 5555, "idle", False),
        ),
    ],
)
def test_client_backends(raw: bytes, cluster: str | None, expected: Title) -> None:
    assert parse_title(" ".join(parse_cmdline(raw)), cluster) == expected


def test_a_backend_just_forked_has_no_title() -> None:
    argv = parse_cmdline(b"/usr/lib/postgresql/15/bin/postgres\x00-D\x00/var/lib/postgresql/15/main\x00")
    assert parse_title(" ".join(argv)) is None
    assert argv_settings(argv) == {"-D": "/var/lib/postgresql/15/main"}


def test_real_postmaster_pid() -> None:
    text = (
        "5903\n/tmp/pgdoctor-test-pg15-tj_q9k3x/data\n1795579256\n58857\n"
        "/tmp/pgdoctor-test-pg15-tj_q9k3x/sock\n127.0.0.1\n  2146850         9\nready   \n"
    )
    parsed = parse_postmaster_pid(text)
    assert parsed is not None
    assert (parsed.pid, parsed.data_dir, parsed.port) == (
        5903,
        "/tmp/pgdoctor-test-pg15-tj_q9k3x/data",
        58857,
    )


def test_config_includes_and_precedence(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "postgresql.conf").write_text(
        "max_connections = 100\ninclude_dir 'conf.d'\ninclude_if_exists 'missing.conf'\n"
    )
    (tmp_path / "conf.d" / "10-tuning.conf").write_text("max_connections = 300 # sized for the pools\n")
    (tmp_path / "conf.d" / "20-reserve.conf").write_text("superuser_reserved_connections = '5'\n")
    result = ConfigRead()
    read_config(tmp_path / "postgresql.conf", Path.read_text, result)
    assert result.error is None
    assert result.settings == {"max_connections": "300", "superuser_reserved_connections": "5"}


def test_unreadable_config_leaves_capacity_unknown() -> None:
    server = PsServer(
        pid=1,
        port=5432,
        data_dir=None,
        version="16",
        cluster_name=None,
        settings=None,
        settings_files=[],
        settings_error="cannot read /var/lib/postgresql/16/main/postgresql.conf: Permission denied",
        os_user="nobody",
    )
    title = parse_title("postgres: app shop [local] idle")
    assert title is not None
    report = analyze_ps(PsData(server, [PsBackend(10, "", title)]))
    assert report.capacity.clients == 1
    assert report.source == "ps"
    assert not [f for f in report.findings if f.code == "capacity"]
    from pgdoctor.render.connections import document, to_json

    assert to_json(report)["capacity"]["max_connections"] is None
    line = document(report).sections[1]
    assert "max_connections unknown" in line.lines[0]  # type: ignore[union-attr]


def test_activity_row_for_a_waiting_backend() -> None:
    title = parse_title("postgres: app shop [local] SELECT waiting")
    assert title is not None
    row = activity_row(PsBackend(7, "", title))
    assert (row.state, row.wait_event_type, row.query, row.client_addr) == ("active", "Lock", "SELECT", None)
