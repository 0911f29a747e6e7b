"""What other roles put on the server cannot steer the terminal, break a markdown table or leak a password
(issue 10, items 4 and 6), on PostgreSQL 15 and 18: sessions whose role, database, application name and
query texts carry escape sequences, and statements that set passwords; every command, every format."""

from __future__ import annotations

import json
import re
from pathlib import Path

import psycopg
import pytest

from tests.conftest import run_cli
from tests.incidents import Sessions, wait_for_active, wait_for_lock_waits
from tests.pgcluster import Cluster

ESC = "\x1b"
CLEAR = f"{ESC}[2J"
TITLE = f"{ESC}]0;owned\x07"
LINK = f"{ESC}]8;;http://evil.example/{ESC}\\click{ESC}]8;;{ESC}\\"
HOSTILE = f"{CLEAR}{TITLE}{LINK}\x07|![img](http://x.example/i.png)\r\nnext\x9b31m\u202e[bold]x"
ROLE = f"ev{CLEAR}|![r](http://x)"
DATABASE = f"db{TITLE}|x"
PASSWORD_ALTER = "Pa55w0rdZ"
PASSWORD_CREATE = "S3cretPw"
TEXT_FORMATS = ("table", "plain", "markdown", "csv")
COMMANDS = (
    ("connections", "--sessions", "--full"),
    ("locks", "--full", "--all"),
    ("slow-queries", "--full"),
    ("recommend", "--ram", "64GB"),
)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@pytest.fixture
def hostile(pg: Cluster, sessions: Sessions) -> Sessions:
    """Idle, active and lock-waiting sessions with hostile names and texts; statements with passwords."""
    for role in (ROLE, "pwvictim", "pwuser"):
        pg.sql(f"DROP ROLE IF EXISTS {_ident(role)}")
    pg.sql(f"CREATE ROLE {_ident(ROLE)} LOGIN SUPERUSER")
    pg.sql("CREATE ROLE pwvictim LOGIN")
    if not pg.sql("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]):
        pg.sql(f"CREATE DATABASE {_ident(DATABASE)}")
    pg.sql("DROP TABLE IF EXISTS hostile_t")
    pg.sql("CREATE TABLE hostile_t (id int)")
    pg.sql("SELECT pg_stat_statements_reset()")

    # pg_stat_statements keeps comments and identifiers; PostgreSQL 15 keeps utility statements verbatim
    with pg.connect() as conn:
        for _ in range(3):
            conn.execute(f"SELECT /* {HOSTILE} */ 1 AS {_ident(HOSTILE)}".encode())
        conn.execute(f"create role pwuser login password '{PASSWORD_CREATE}'".encode())

    # idle: its last statement set a password
    victim = sessions.open("pwsetter")
    victim.execute(f"ALTER ROLE pwvictim PASSWORD '{PASSWORD_ALTER}'".encode())
    # the role and database names, and an application name (the server makes non-ASCII '?' there)
    conn = psycopg.connect(
        host=str(pg.socket_dir),
        port=pg.port,
        user=ROLE,
        dbname=DATABASE,
        application_name=HOSTILE,
        autocommit=True,
    )
    sessions.conns.append(conn)
    conn.execute(f"SELECT /* {HOSTILE} */ 1".encode())
    # a lock holder idle in transaction whose last text is hostile, a waiter running a hostile text
    sessions.idle_in_transaction("holder", f"LOCK TABLE hostile_t /* {HOSTILE} */")
    waiter = sessions.send("waiter", f"SELECT * FROM hostile_t /* {HOSTILE} */")
    wait_for_lock_waits(pg, [waiter])
    running = sessions.send("runner", f"SELECT pg_sleep(60) /* {HOSTILE} */")
    wait_for_active(pg, [running])
    return sessions


_LAYOUT_OK = {"\n"}


def _control_characters(text: str) -> set[str]:
    return {
        c for c in text if (ord(c) < 0x20 and c not in _LAYOUT_OK) or 0x7F <= ord(c) <= 0x9F or c == "\u202e"
    }


def test_no_control_character_reaches_the_terminal(pg: Cluster, hostile: Sessions) -> None:
    outputs: dict[tuple[str, str], str] = {}
    for command in COMMANDS:
        for fmt in TEXT_FORMATS:
            if command[0] == "recommend" and fmt == "csv":
                continue
            result = run_cli(*command, "--dsn", pg.dsn(), "-f", fmt)
            assert result.returncode in (0, 1), (command, fmt, result.stderr)
            outputs[(command[0], fmt)] = result.stdout
            assert not _control_characters(result.stdout), (command, fmt, _control_characters(result.stdout))
            assert not _control_characters(result.stderr), (command, fmt)
    # the data is there, escaped, not dropped
    for name in ("connections", "locks", "slow-queries"):
        for fmt in TEXT_FORMATS:
            assert "\\x1b[2J" in outputs[(name, fmt)] or "\\\\x1b\\[2J" in outputs[(name, fmt)], (name, fmt)
    assert "\\x9b31m" in outputs[("connections", "plain")]
    assert "\\u202e" in outputs[("connections", "plain")]
    assert " next" in outputs[("connections", "plain")]  # query texts are drawn on one line


def _markdown_rows(text: str) -> list[list[str]]:
    """Each markdown table as its rows' unescaped | counts, table by table."""
    tables: list[list[str]] = []
    current: list[str] = []
    for line in text.split("\n"):
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def test_markdown_rows_stay_one_row_each_and_render_nothing(pg: Cluster, hostile: Sessions) -> None:
    for command in COMMANDS:
        out = run_cli(*command, "--dsn", pg.dsn(), "-f", "markdown").stdout
        tables = _markdown_rows(out)
        assert tables, command
        for table in tables:
            bars = {len(re.findall(r"(?<!\\)\|", line)) for line in table}
            assert len(bars) == 1, (command, table)  # no row split into more cells
            for line in table:
                assert line.endswith("|")
        assert "](http" not in out.replace("\\](http", "")  # no live link or image
        assert not re.search(r"(?<!\\)!(?<!\\)\[", out)
    sessions_md = run_cli("connections", "--sessions", "--full", "--dsn", pg.dsn(), "-f", "markdown").stdout
    assert "\\!\\[img\\](http://x.example/i.png)" in sessions_md


def test_json_keeps_the_exact_text(pg: Cluster, hostile: Sessions) -> None:
    result = run_cli("connections", "--sessions", "--dsn", pg.dsn(), "-f", "json")
    sessions = json.loads(result.stdout)["sessions"]
    assert any(s["query"] == f"SELECT /* {HOSTILE} */ 1" for s in sessions), sessions


def test_passwords_appear_in_no_output_and_no_snapshot(
    pg: Cluster, hostile: Sessions, tmp_path: Path
) -> None:
    premise = pg.sql("SELECT query FROM pg_stat_activity WHERE application_name = 'pwsetter'")
    assert PASSWORD_ALTER in premise[0][0]  # the server shows it to pgdoctor
    if pg.version == "15":
        texts = [r[0] for r in pg.sql("SELECT query FROM pg_stat_statements")]
        assert any(PASSWORD_CREATE in t for t in texts)  # PostgreSQL 15 keeps utility statements verbatim
    seen: list[str] = []
    for command in COMMANDS:
        for fmt in (*TEXT_FORMATS, "json"):
            if command[0] == "recommend" and fmt == "csv":
                continue
            result = run_cli(*command, "--dsn", pg.dsn(), "-f", fmt)
            seen.append(result.stdout + result.stderr)
    snap = tmp_path / "snap.json"
    result = run_cli("snapshot", "-o", str(snap), "--dsn", pg.dsn())
    assert result.returncode == 0, result.stderr
    seen.append(snap.read_text())
    for text in seen:
        assert PASSWORD_ALTER not in text
        assert PASSWORD_CREATE not in text
    assert "PASSWORD '****'" in seen[-1]
    for fmt in ("plain", "json"):
        offline = run_cli("connections", "--sessions", "--full", "--snapshot", str(snap), "-f", fmt)
        assert PASSWORD_ALTER not in offline.stdout
