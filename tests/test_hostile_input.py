"""Hostile or careless input that needs no server (issue 10, items 6, 7 and 12): `snapshot -o` targets,
numeric options, a closed stdout pipe, markdown size, and the password masker on generated statements."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgdoctor.cli import app
from pgdoctor.errors import ExitCode, PgDoctorError
from pgdoctor.options import harden
from pgdoctor.secrets import mask_secrets
from tests.conftest import FIXTURES, ROOT, run_cli
from tests.pgcluster import Cluster

INCIDENT = FIXTURES / "incident-pg18.json"
UNREACHABLE = "host=/nonexistent-socket-dir port=1 connect_timeout=1"


def _one_line_exit_2(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr


# --- snapshot -o ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["", "/nonexistent-dir/x.json", "DIR", "FILE/x.json"])
def test_bad_output_paths_fail_before_connecting(tmp_path: Path, target: str) -> None:
    (tmp_path / "file").write_text("x")
    target = target.replace("DIR", str(tmp_path)).replace("FILE", str(tmp_path / "file"))
    result = run_cli("snapshot", "-o", target, "--dsn", UNREACHABLE)
    _one_line_exit_2(result)  # not 3: the target was refused before any connection was tried
    assert "-o" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # no temporary file left behind


def test_snapshot_writes_through_symlinks_devices_and_stdout(pg: Cluster, tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    result = run_cli("snapshot", "-o", str(link), "--dsn", pg.dsn())
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert json.loads(real.read_text())["format"] == "pgdoctor-snapshot"

    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "new.json")
    assert run_cli("snapshot", "-o", str(dangling), "--dsn", pg.dsn()).returncode == 0
    assert dangling.is_symlink() and (tmp_path / "new.json").is_file()

    result = run_cli("snapshot", "-o", "/dev/null", "--dsn", pg.dsn())
    assert result.returncode == 0, result.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)  # still the device, not a regular file

    result = run_cli("snapshot", "-o", "-", "--dsn", pg.dsn())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["format"] == "pgdoctor-snapshot"
    result = run_cli("snapshot", "-o", "/dev/stdout", "--dsn", pg.dsn())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["format"] == "pgdoctor-snapshot"
    assert os.path.islink("/dev/stdout")

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # the reader drains into a file: a snapshot larger than two pipe buffers (the shared cluster's
    # pg_stat_statements grows with the suite) must not stall a reader nobody reads from
    received = tmp_path / "received.json"
    with received.open("wb") as sink:
        reader = subprocess.Popen(["cat", str(fifo)], stdout=sink)
        result = run_cli("snapshot", "-o", str(fifo), "--dsn", pg.dsn())
        reader.wait(timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(received.read_text())["format"] == "pgdoctor-snapshot"
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_full_device_is_one_line_and_stays_a_device(pg: Cluster) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    result = run_cli("snapshot", "-o", "/dev/full", "--dsn", pg.dsn())
    _one_line_exit_2(result)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


# --- numeric options ------------------------------------------------------------------------------------


def _numeric_options() -> list[tuple[str, str]]:
    from typer.main import get_command

    from pgdoctor.options import _Checked

    found = []
    for name, command in harden(get_command(app)).commands.items():
        for param in command.params:
            if isinstance(param.type, _Checked):
                found.append((name, param.opts[0]))
    return found


def _offline_commands() -> set[str]:
    """The commands that read a file only (timeline): no --dsn to give them."""
    from typer.main import get_command

    commands = harden(get_command(app)).commands.items()
    return {name for name, c in commands if not any("--dsn" in p.opts for p in c.params)}


NUMERIC = _numeric_options()
OFFLINE = _offline_commands()


def test_every_command_has_its_numeric_options_checked() -> None:
    assert ("connections", "--timeout") in NUMERIC
    assert ("slow-queries", "--min-mean-ms") in NUMERIC or len(
        [n for n in NUMERIC if n[0] == "slow-queries"]
    ) > 5
    assert {name for name, _ in NUMERIC} >= {"connections", "locks", "slow-queries", "recommend", "snapshot"}


@pytest.mark.parametrize(("command", "option"), NUMERIC)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "1e300", "9" * 5000])
def test_numeric_options_refuse_nonsense(command: str, option: str, value: str) -> None:
    target = [] if command in OFFLINE else ["--dsn", UNREACHABLE]
    with pytest.raises(PgDoctorError) as caught:
        app([command, option, value, *target], standalone_mode=False)
    assert caught.value.exit_code == ExitCode.USAGE
    assert option in caught.value.message and "\n" not in caught.value.message
    assert len(caught.value.message) < 200


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_timeout_nonsense_is_one_line_exit_2(value: str) -> None:
    _one_line_exit_2(run_cli("connections", "--timeout", value, "--dsn", UNREACHABLE))


def test_a_5000_digit_ram_is_one_line_exit_2() -> None:
    _one_line_exit_2(run_cli("recommend", "--ram", "9" * 5000 + "GB"))
    _one_line_exit_2(run_cli("recommend", "--ram", "64GB", "--app", "w=" + "9" * 5000))


# --- output ----------------------------------------------------------------------------------------------


def _synthetic(tmp_path: Path, clients: int, big_query: int = 0) -> Path:
    doc = json.loads(INCIDENT.read_text())
    activity = doc["activity"]
    base = [r for r in activity if r["backend_type"] == "client backend"]
    others = [r for r in activity if r["backend_type"] != "client backend"]
    rows = []
    for i in range(clients):
        row = dict(base[i % len(base)])
        row["pid"] = 100_000 + i
        rows.append(row)
    if big_query:
        rows[0]["query"] = "SELECT " + "x" * big_query
    doc["activity"] = others + rows
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("fmt", ["plain", "table", "markdown", "csv", "json"])
def test_a_closed_stdout_pipe_has_an_exit_code_of_its_own(tmp_path: Path, fmt: str) -> None:
    path = _synthetic(tmp_path, 3000)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgdoctor", "connections", "--sessions", "--snapshot", str(path), "-f", fmt],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(100)
    proc.stdout.close()  # the reader goes away, as `| head -c 100` does
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == int(ExitCode.BROKEN_PIPE)
    assert int(ExitCode.BROKEN_PIPE) == 141
    assert b"Traceback" not in err and b"Exception ignored" not in err, err


def test_markdown_size_follows_the_data_not_its_square(tmp_path: Path) -> None:
    path = _synthetic(tmp_path, 13, big_query=1_000_000)
    result = run_cli("connections", "--sessions", "--full", "--snapshot", str(path), "-f", "markdown")
    assert result.returncode in (0, 1), result.stderr
    assert "x" * 1_000_000 in result.stdout  # the whole query is there, once
    assert len(result.stdout) < 1_200_000, len(result.stdout)  # was 13.6 MB: every row padded to it


# --- the password masker ------------------------------------------------------------------------------

_SECRET_BODY = st.text(
    st.one_of(st.sampled_from(list("'\\$ \"=;\n\t@:/")), st.characters(codec="utf-8", categories=["L", "N"])),
    max_size=16,
)
START, END = "Qx7", "Jk3"  # in no template: whatever is left of them is left of the password


def _sql_literal(secret: str, style: str) -> str:
    if style == "plain":
        return "'" + secret.replace("'", "''") + "'"
    if style == "escape":
        return "E'" + secret.replace("\\", "\\\\").replace("'", "\\'") + "'"
    tag = "$pw$" if "$$" in secret or secret.endswith("$") else "$$"
    if tag in secret:
        tag = "$zz9$"
    return tag + secret + tag


def _conninfo_value(secret: str) -> str:
    return "'" + secret.replace("\\", "\\\\").replace("'", "\\'") + "'"


@settings(max_examples=1500, deadline=None)
@given(
    body=_SECRET_BODY,
    style=st.sampled_from(["plain", "escape", "dollar"]),
    template=st.sampled_from(
        [
            "ALTER ROLE app PASSWORD {lit}",
            "alter user app with encrypted password {lit} valid until 'infinity'",
            "CREATE ROLE app LOGIN PASSWORD {lit} IN ROLE readers",
            "CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'app', password {lit})",
            'ALTER USER MAPPING FOR app SERVER s OPTIONS (SET "password" {lit})',
            "CREATE SERVER s FOREIGN DATA WRAPPER dblink_fdw OPTIONS (host 'h', password {lit})",
            "SELECT dblink_connect({conn})",
            "SELECT * FROM dblink({conn}, 'select 1') AS t(x int)",
            "DO $do$BEGIN EXECUTE {nested}; END$do$",
            "SELECT * FROM dblink('postgresql://app:{uri}@db/x', 'select 1')",
        ]
    ),
    truncate=st.booleans(),
)
def test_masker_hides_generated_passwords(body: str, style: str, template: str, truncate: bool) -> None:
    secret = START + body + END
    from urllib.parse import quote

    conninfo = f"host=db dbname=x password={_conninfo_value(secret)} user=app"
    statement = template.format(
        lit=_sql_literal(secret, style),
        conn=_sql_literal(conninfo, style),
        nested=_sql_literal(f"ALTER ROLE app PASSWORD {_sql_literal(secret, 'plain')}", "plain"),
        uri=quote(secret, safe=""),
    )
    if truncate:  # pg_stat_activity cuts texts at track_activity_query_size
        statement = statement[: statement.index(START) + len(START) + len(body) // 2 + 1]
    masked = mask_secrets(statement)
    assert masked is not None
    assert START not in masked and END not in masked, (statement, masked)
    assert "****" in masked


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT password FROM users WHERE id = 1",
        "ALTER ROLE app PASSWORD NULL",
        "SELECT 1",
        "UPDATE accounts SET balance = balance + 1 WHERE id = $1",
    ],
)
def test_masker_leaves_other_statements_alone(statement: str) -> None:
    assert mask_secrets(statement) == statement
