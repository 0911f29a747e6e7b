"""The command line's wiring, in process (typer's CliRunner through `pgdoctor.cli.main`, see
`tests.conftest.invoke`), from the recorded fixtures: every option reaches the analysis, every format is
drawn, --fail-on and the documented exit codes, usage errors as one line. A real process (`run_cli`)
is kept for what only a process shows: the exit status itself, one connection, the imports at start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main

from pgdoctor.collect.pgbouncer import ConnRow, DatabaseRow, PgBouncerData, PoolRow
from pgdoctor.serde import to_jsonable
from tests.conftest import FIXTURES, ROOT, invoke, run_cli

INCIDENT = str(FIXTURES / "incident-pg15.json")
LOCKS = str(FIXTURES / "locks-pg18.json")
STATEMENTS = str(FIXTURES / "statements-pg18-1.12.json")
FORMATS = ("table", "plain", "markdown", "csv", "json")


def as_json(*args: str, code: int = 0) -> dict[str, Any]:
    result = invoke(*args, "-f", "json")
    assert result.exit_code == code, (args, result.stderr)
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def codes(doc: dict[str, Any]) -> set[str]:
    return {f["code"] for f in doc["findings"]}


def one_line_error(args: tuple[str, ...], needle: str, code: int = 2) -> None:
    result = invoke(*args)
    assert result.exit_code == code, (args, result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and needle in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stdout == ""


def write_pgbouncer_snapshot(path: Path) -> Path:
    """The incident snapshot with a `pgbouncer` dataset: a pool with clients queued behind a full pool
    (no recorded fixture has one: PgBouncer's is saved only by `snapshot --pgbouncer-dsn`)."""
    data = PgBouncerData(
        version="PgBouncer 1.18.0",
        pools=[PoolRow("app", "web", cl_active=4, cl_waiting=3, sv_active=4, maxwait=7)],
        databases=[DatabaseRow("app", pool_size=4, reserve_pool=0)],
        clients=[ConnRow(database="app", user="web", state="active", addr="10.0.0.1") for _ in range(7)],
        servers=[],
        config={"max_client_conn": "100", "default_pool_size": "4", "query_wait_timeout": "120"},
        stats=[],
        lists={},
    )
    doc = json.loads(Path(INCIDENT).read_text())
    doc["datasets"]["pgbouncer"] = to_jsonable(data)
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture(scope="module")
def pgbouncer_snapshot(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_pgbouncer_snapshot(tmp_path_factory.mktemp("snap") / "pgbouncer.json"))


# ---- every command draws every format from a snapshot ----


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("command", "snapshot", "needle"),
    [
        ("connections", INCIDENT, "data_loader_worker"),
        ("locks", LOCKS, "job_api"),
        ("slow-queries", STATEMENTS, "shop_app"),
        ("recommend", INCIDENT, "shared_buffers"),
    ],
)
def test_every_command_in_every_format(command: str, snapshot: str, needle: str, fmt: str) -> None:
    result = invoke(command, "--snapshot", snapshot, "-f", fmt)
    assert result.exit_code == 0, result.stderr
    assert needle in result.stdout and result.stderr == ""
    if fmt == "json":
        assert json.loads(result.stdout)["command"] == command


@pytest.mark.parametrize("fmt", FORMATS)
def test_pgbouncer_in_every_format(pgbouncer_snapshot: str, fmt: str) -> None:
    result = invoke("pgbouncer", "--snapshot", pgbouncer_snapshot, "-f", fmt)
    assert result.exit_code == 0, result.stderr
    assert "app" in result.stdout
    if fmt == "json":
        doc = json.loads(result.stdout)
        assert doc["command"] == "pgbouncer" and {"clients_waiting", "pool_full"} <= codes(doc)


# ---- --fail-on and exit codes ----


@pytest.mark.parametrize(
    ("command", "snapshot", "worst"),
    [
        ("connections", INCIDENT, "critical"),
        ("locks", LOCKS, "critical"),
        ("slow-queries", STATEMENTS, "critical"),
        ("recommend", INCIDENT, "critical"),
    ],
)
def test_fail_on(command: str, snapshot: str, worst: str) -> None:
    assert invoke(command, "--snapshot", snapshot).exit_code == 0
    for level in ("info", "warning", "critical"):
        assert invoke(command, "--snapshot", snapshot, "--fail-on", level).exit_code == 1, level
    assert invoke(command, "--snapshot", snapshot, "--fail-on", "never").exit_code == 0
    bogus = invoke(command, "--snapshot", snapshot, "--fail-on", "bogus")
    assert bogus.exit_code == 2 and "--fail-on" in bogus.stderr


def test_fail_on_counts_only_what_is_at_or_above_it(pgbouncer_snapshot: str) -> None:
    """The pgbouncer fixture has warnings only: --fail-on critical passes, warning fails."""
    doc = as_json("pgbouncer", "--snapshot", pgbouncer_snapshot)
    assert {f["severity"] for f in doc["findings"]} == {"warning"}
    assert invoke("pgbouncer", "--snapshot", pgbouncer_snapshot, "--fail-on", "critical").exit_code == 0
    assert invoke("pgbouncer", "--snapshot", pgbouncer_snapshot, "--fail-on", "warning").exit_code == 1


def test_the_exit_status_of_a_real_process() -> None:
    """What `invoke` reads from SystemExit is the process's status (0, 1, 2), and an error is one line."""
    assert run_cli("connections", "--snapshot", INCIDENT, "-f", "json").returncode == 0
    assert run_cli("connections", "--snapshot", INCIDENT, "--fail-on", "critical").returncode == 1
    bad = run_cli("connections", "--snapshot", INCIDENT, "--timeout", "nan")
    assert (bad.returncode, bad.stderr) == (2, "error: --timeout 'nan': not a finite number\n")


# ---- options reach the analysis ----


def test_connections_options_reach_the_analysis() -> None:
    default = as_json("connections", "--snapshot", INCIDENT)
    assert default["group_by"] == "application"
    assert {"idle_in_transaction", "idle_connections", "blocked"} <= codes(default)
    for by in ("user", "database", "client"):
        assert as_json("connections", "--snapshot", INCIDENT, "--by", by)["group_by"] == by
    quiet = as_json(
        "connections",
        "--snapshot",
        INCIDENT,
        "--idle-xact-warn",
        "1e9",
        "--idle-xact-crit",
        "1e9",
        "--leak-min-idle",
        "100000",
    )
    # blockers are reported at any age: the idle-in-transaction finding stays for them, at warning
    assert "idle_connections" not in codes(quiet)
    leak = {f["subject"]: f for f in default["findings"] if f["code"] == "idle_connections"}
    assert leak["data_loader_worker"]["severity"] == "critical"
    share = as_json(
        "connections", "--snapshot", INCIDENT, "--leak-share-pct", "100", "--leak-idle-age", "1e9"
    )
    assert "idle_connections" not in codes(share)
    blocked = as_json("connections", "--snapshot", INCIDENT, "--blocked-crit", "1e9")
    assert [f["severity"] for f in blocked["findings"] if f["code"] == "blocked"] == ["warning"]
    xmin = as_json("connections", "--snapshot", INCIDENT, "--xmin-warn", "0")
    assert "xmin_horizon" in codes(xmin) and "xmin_horizon" not in codes(default)


def test_connections_capacity_thresholds_reach_the_analysis_and_the_table() -> None:
    warn = as_json("connections", "--snapshot", INCIDENT, "--capacity-warn-pct", "50")
    assert [f["severity"] for f in warn["findings"] if f["code"] == "capacity"] == [
        "critical"
    ]  # no slot left
    plain = invoke("connections", "--snapshot", INCIDENT, "-f", "plain", "--sessions", "--full")
    assert "Client sessions by application" in plain.stdout and "pid" in plain.stdout
    assert invoke("connections", "--snapshot", INCIDENT, "-f", "plain").stdout.count(
        "\n"
    ) < plain.stdout.count("\n")


def test_connections_usage_errors() -> None:
    one_line_error(("connections", "--snapshot", INCIDENT, "--data-dir", "/x"), "--data-dir goes with --ps")
    one_line_error(("connections", "--snapshot", INCIDENT, "--ps"), "either --ps or --snapshot")
    one_line_error(("connections", "--ps", "--by", "application"), "use --by user|database|client")
    one_line_error(
        ("connections", "--snapshot", INCIDENT, "--pgbouncer-dsn", "host=x"), "not with --snapshot"
    )
    one_line_error(("connections", "--snapshot", INCIDENT, "-d", "host=x"), "either --dsn or --snapshot")
    one_line_error(
        ("connections", "--snapshot", INCIDENT, "--capacity-warn-pct", "-1"), "must not be negative"
    )
    one_line_error(("connections", "--snapshot", "/nonexistent.json"), "/nonexistent.json")
    bad_choice = invoke("connections", "--snapshot", INCIDENT, "--by", "colour")
    assert bad_choice.exit_code == 2 and "--by" in bad_choice.stderr


def test_locks_options_reach_the_analysis(tmp_path: Path) -> None:
    """Moved from tests/test_locks_fixture.py (a subprocess each), assertions kept."""
    assert invoke("locks", "--snapshot", LOCKS).exit_code == 0
    assert invoke("locks", "--snapshot", LOCKS, "--fail-on", "critical").exit_code == 1
    quiet = invoke(
        "locks", "--snapshot", LOCKS, "--fail-on", "warning", "--min-wait", "3600", "--format", "json"
    )
    assert quiet.exit_code == 0 and json.loads(quiet.stdout)["waiting"] == []
    fast = as_json("locks", "--snapshot", LOCKS, "--fast")
    assert fast["details"] is False and all(w["mode"] is None for w in fast["waiting"])
    assert invoke("locks", "--snapshot", LOCKS, "-d", "host=x").exit_code == 2
    every = as_json("locks", "--snapshot", LOCKS, "--all")
    assert every["summary"] and as_json("locks", "--snapshot", LOCKS)["summary"] is None
    default = as_json("locks", "--snapshot", LOCKS)
    assert "long_wait" in codes(default)
    assert "long_wait" not in codes(
        as_json("locks", "--snapshot", LOCKS, "--wait-warn", "1e9", "--wait-crit", "1e9")
    )
    # a snapshot taken before this command existed says so
    doc = json.loads(Path(LOCKS).read_text())
    del doc["datasets"]["locks"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    one_line_error(("locks", "--snapshot", str(old)), "has no 'locks' data")


def test_slow_queries_options_reach_the_analysis() -> None:
    default = as_json("slow-queries", "--snapshot", STATEMENTS)
    assert default["sort"] == "total" and default["limit"] == 10
    by_calls = as_json("slow-queries", "--snapshot", STATEMENTS, "--sort", "calls", "-n", "2")
    assert by_calls["sort"] == "calls" and len(by_calls["statements"]) == 2
    calls = [s["calls"] for s in by_calls["statements"]]
    assert calls == sorted(calls, reverse=True)
    assert "low_hit_ratio" in codes(default)
    assert "low_hit_ratio" not in codes(
        as_json("slow-queries", "--snapshot", STATEMENTS, "--hit-ratio-min", "0")
    )
    assert "dominant_statement" not in codes(
        as_json(
            "slow-queries", "--snapshot", STATEMENTS, "--share-warn-pct", "100", "--share-crit-pct", "100"
        )
    )
    users = as_json("slow-queries", "--snapshot", STATEMENTS, "--user", "shop_app")
    assert users["statements"] and {s["user"] for s in users["statements"]} == {"shop_app"}


def test_pgbouncer_options_reach_the_analysis(pgbouncer_snapshot: str) -> None:
    default = as_json("pgbouncer", "--snapshot", pgbouncer_snapshot)
    waiting = [f for f in default["findings"] if f["code"] == "clients_waiting"]
    assert [f["severity"] for f in waiting] == ["warning"]  # 7 s of a 120 s query_wait_timeout
    near = as_json("pgbouncer", "--snapshot", pgbouncer_snapshot, "--wait-crit-pct", "5")
    assert [f["severity"] for f in near["findings"] if f["code"] == "clients_waiting"] == ["critical"]
    assert "client_limit" not in codes(default)
    limit = as_json("pgbouncer", "--snapshot", pgbouncer_snapshot, "--client-warn-pct", "5")
    assert [f["severity"] for f in limit["findings"] if f["code"] == "client_limit"] == ["warning"]
    crit = as_json(
        "pgbouncer", "--snapshot", pgbouncer_snapshot, "--client-warn-pct", "5", "--client-crit-pct", "6"
    )
    assert [f["severity"] for f in crit["findings"] if f["code"] == "client_limit"] == ["critical"]


def test_pgbouncer_usage_errors(pgbouncer_snapshot: str) -> None:
    one_line_error(("pgbouncer", "--snapshot", pgbouncer_snapshot, "-d", "host=x"), "not both")
    one_line_error(("pgbouncer", "--snapshot", pgbouncer_snapshot, "--postgres-dsn", "host=x"), "not both")
    one_line_error(("pgbouncer", "--snapshot", INCIDENT), "has no 'pgbouncer' data")


def test_snapshot_usage_errors(tmp_path: Path) -> None:
    one_line_error(("snapshot", "-o", str(tmp_path / "missing" / "x.json"), "-d", "host=x"), "")
    result = invoke("snapshot", "--bogus")
    assert result.exit_code == 2 and "--bogus" in result.stderr


# ---- a run builds only the command it names ----


def test_every_command_module_is_registered() -> None:
    from pgdoctor import cli

    # sampling.py is the sampling loop shared by connections and snapshot --sample, watching.py the
    # --watch loop of connections, locks and pgbouncer: not commands
    modules = {p.stem for p in (ROOT / "pgdoctor" / "commands").glob("*.py")} - {
        "__init__",
        "sampling",
        "watching",
    }
    assert {module.rsplit(".", 1)[1] for module, _ in cli.COMMANDS.values()} == modules
    assert list(typer.main.get_command(cli.app).commands) == list(cli.COMMANDS)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "name", ["connections", "locks", "slow-queries", "recommend", "pgbouncer", "snapshot"]
)
def test_a_command_built_alone_is_the_same_command(name: str) -> None:
    """What a run builds (the named command only) parses and helps exactly as in the whole command line."""
    from pgdoctor import cli

    alone: Any = typer.main.get_command(cli.for_arguments([name, "--help"]))
    whole: Any = typer.main.get_command(cli.app)
    assert list(alone.commands) == [name]
    one, full = alone.commands[name], whole.commands[name]
    assert [(p.opts, p.default, p.help if hasattr(p, "help") else None) for p in one.params] == [
        (p.opts, p.default, p.help if hasattr(p, "help") else None) for p in full.params
    ]
    assert one.help == full.help
    assert invoke(name, "--help").stdout == invoke(name, "-h").stdout
    assert list(typer.main.get_command(cli.for_arguments(["--help"])).commands) == list(cli.COMMANDS)  # type: ignore[attr-defined]
    assert list(typer.main.get_command(cli.for_arguments(["conections"])).commands) == list(cli.COMMANDS)  # type: ignore[attr-defined]
