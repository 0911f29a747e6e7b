"""`recommend --pgbouncer-dsn` against a real PgBouncer (Debian's 1.18) in front of PostgreSQL 15 and 18: the
comparison is SHOW CONFIG / SHOW DATABASES read at the same moment; pools beyond PostgreSQL's usable slots
get `exceeds_postgres`; the emitted `-f pgbouncer` block, applied (a fresh PgBouncer, or the ini edited and
the advised RELOAD run), is reported as matching; the admin commands of the advice work when run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.pgbouncer import PgBouncer, available, running_pgbouncer
from tests.pgcluster import SUPERUSER, Cluster

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(not available(), reason="PgBouncer is not installed (apt-get install pgbouncer)"),
]

ARGS = ("--ram", "2G", "--cpus", "2", "--app", "web=40x2", "--app", "jobs=30")
KEYS = (
    "pool_mode",
    "default_pool_size",
    "reserve_pool_size",
    "reserve_pool_timeout",
    "max_client_conn",
    "max_db_connections",
    "server_idle_timeout",
)


def postgres_dsn(pg: Cluster) -> str:
    return f"host={pg.socket_dir} port={pg.port} user={SUPERUSER} dbname=postgres"


def recommend_json(*args: str) -> dict[str, Any]:
    result = run_cli("recommend", *args, "-f", "json")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def config(bouncer: PgBouncer) -> dict[str, dict[str, Any]]:
    return {row["key"]: row for row in bouncer.admin("SHOW CONFIG")}


def usable(pg: Cluster) -> int:
    """PostgreSQL's usable slots, from the server itself."""
    reserved = "current_setting('reserved_connections')::int" if int(pg.version) >= 16 else "0"
    rows = pg.sql(
        "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')"
        f"::int - {reserved}"
    )
    return int(rows[0][0])


def codes(doc: dict[str, Any]) -> set[str]:
    return {f["code"] for f in doc["findings"]}


def test_the_comparison_is_show_config_and_show_databases(pg: Cluster) -> None:
    settings = {"reserve_pool_size": 2, "max_client_conn": 150, "server_idle_timeout": 300}
    own = {"own_db": "pool_size=3 reserve_pool=1"}  # a [databases] entry with pool limits of its own
    with running_pgbouncer(pg, pool_size=7, settings=settings, databases=own) as bouncer:
        clients = [bouncer.connect(application_name="web") for _ in range(3)]
        try:
            before, show_dbs = config(bouncer), bouncer.admin("SHOW DATABASES")
            doc = recommend_json(
                *ARGS, "-d", postgres_dsn(pg), "--pgbouncer-dsn", bouncer.dsn(dbname="pgbouncer")
            )
            after = config(bouncer)
        finally:
            for c in clients:
                c.close()
    assert before == after  # the same moment: nothing changed meanwhile (and pgdoctor changed nothing)
    cmp = doc["pgbouncer_current"]
    assert cmp["version"].startswith("PgBouncer ")
    plan = doc["pools"]["pgbouncer"]
    assert [s["name"] for s in cmp["settings"]] == list(KEYS)
    for s in cmp["settings"]:
        row = before[s["name"]]
        assert s["value"] == str(plan[s["name"]])
        assert s["current"] == row["value"], s
        assert s["restart"] is (row["changeable"] == "no"), s
        assert s["changes"] is (s["value"] != row["value"]), s
    # the premise: some differ, some do not
    assert {s["name"] for s in cmp["settings"] if s["changes"]} >= {"default_pool_size", "max_client_conn"}
    assert not next(s for s in cmp["settings"] if s["name"] == "pool_mode")["changes"]
    dbs = {d["name"]: d for d in cmp["databases"]}
    shown = {d["name"]: d for d in show_dbs if d["name"] != "pgbouncer"}
    assert set(dbs) == set(shown) == {"own_db", "postgres"}
    for name, d in dbs.items():
        assert (d["pool_size"], d["reserve_pool"], d["max_db_connections"]) == (
            shown[name]["pool_size"],
            shown[name]["reserve_pool"],
            shown[name]["max_connections"],
        )
    assert dbs["own_db"]["overrides"] == ["pool_size", "reserve_pool"]
    assert dbs["postgres"]["overrides"] == []
    differs = next(f for f in doc["findings"] if f["code"] == "pgbouncer_differs")
    assert "default_pool_size 7 (recommended" in differs["message"]
    assert "database own_db's own pool_size=3" in differs["message"]
    assert "RELOAD;" in differs["advice"] and "never runs it" in differs["advice"]
    assert cmp["postgres_usable"] == usable(pg)
    # the plan is for the applications given, not the observed ones
    assert doc["inputs"]["apps_source"] == "given"


def test_without_app_the_applications_are_pgbouncers_clients(pg: Cluster) -> None:
    with running_pgbouncer(pg) as bouncer:
        clients = [bouncer.connect(application_name="api") for _ in range(4)]
        clients += [bouncer.connect(application_name="cron")]
        try:
            doc = recommend_json("--ram", "2G", "--pgbouncer-dsn", bouncer.dsn(dbname="pgbouncer"))
        finally:
            for c in clients:
                c.close()
    assert doc["inputs"]["apps_source"] == "observed"
    assert [(a["name"], a["processes"]) for a in doc["inputs"]["apps"]] == [("api", 4), ("cron", 1)]
    assert doc["pools"]["pgbouncer"] is not None  # a running PgBouncer is always planned
    assert doc["pgbouncer_current"]["postgres_usable"] is None  # no --dsn: no server to compare with
    assert "exceeds_postgres" not in codes(doc)
    observed = next(f for f in doc["findings"] if f["code"] == "apps_observed")
    assert "SHOW CLIENTS" in observed["message"]


def test_pools_beyond_postgres_get_exceeds_postgres(pg: Cluster, tmp_path: Path) -> None:
    slots = usable(pg)
    # the `*` pool of `postgres` alone fits; a configured database nobody used yet makes the total too big
    big = {"spare_db": f"pool_size={slots}"}
    with running_pgbouncer(pg, pool_size=5, databases=big) as bouncer:
        client = bouncer.connect()
        client.execute("SELECT 1")
        try:
            admin = bouncer.dsn(dbname="pgbouncer")
            doc = recommend_json(*ARGS, "-d", postgres_dsn(pg), "--pgbouncer-dsn", admin)
            pools = bouncer.admin("SHOW POOLS")
            snap = tmp_path / "snap.json"
            saved = run_cli("snapshot", "-d", postgres_dsn(pg), "--pgbouncer-dsn", admin, "-o", str(snap))
            assert saved.returncode == 0, saved.stderr
        finally:
            client.close()
    assert "spare_db" not in {p["database"] for p in pools}  # the premise: no pool of it yet
    exceeds = [f for f in doc["findings"] if f["code"] == "exceeds_postgres"]
    assert len(exceeds) == 1 and exceeds[0]["severity"] == "warning"
    total = slots + 5
    assert f"may open {total} server connections" in exceeds[0]["message"]
    assert f"PostgreSQL has {slots} usable slots" in exceeds[0]["message"]
    assert exceeds[0]["advice"].endswith("run RELOAD; on the admin console (pgdoctor never runs it)")
    assert exceeds[0]["action"] == "RELOAD;"
    assert (doc["pgbouncer_current"]["server_connections"], doc["pgbouncer_current"]["postgres_usable"]) == (
        total,
        slots,
    )
    # the same offline, from the snapshot taken with --pgbouncer-dsn
    offline = recommend_json(*ARGS, "--snapshot", str(snap))
    assert offline["pgbouncer_current"] == doc["pgbouncer_current"]
    assert [f for f in offline["findings"] if f["code"] == "exceeds_postgres"] == exceeds
    # the spare database 5 smaller: the pools fill the slots exactly, no finding (the rule is the count)
    spare = {"spare_db": f"pool_size={slots - 5}"}
    with running_pgbouncer(pg, pool_size=5, databases=spare) as bouncer, bouncer.connect() as client:
        client.execute("SELECT 1")
        fits = recommend_json(
            *ARGS, "-d", postgres_dsn(pg), "--pgbouncer-dsn", bouncer.dsn(dbname="pgbouncer")
        )
    assert fits["pgbouncer_current"]["server_connections"] == slots
    assert "exceeds_postgres" not in codes(fits)


def ini_values(block: str) -> dict[str, str]:
    """key = value lines of the emitted [pgbouncer] block (comments are lines of their own)."""
    out = {}
    for line in block.splitlines():
        m = re.fullmatch(r"(\w+) = (.*)", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def test_the_emitted_block_applied_is_reported_as_matching(pg: Cluster) -> None:
    server = ("-d", postgres_dsn(pg))
    block = run_cli("recommend", *ARGS, *server, "--pgbouncer", "-f", "pgbouncer")
    assert block.returncode == 0, block.stderr
    values = ini_values(block.stdout)
    assert set(values) == set(KEYS)
    # a PgBouncer started with another configuration: every difference reported, RELOAD for each
    with running_pgbouncer(pg, pool_size=9, settings={"max_client_conn": 120}) as bouncer:
        admin = bouncer.dsn(dbname="pgbouncer")
        first = recommend_json(*ARGS, *server, "--pgbouncer-dsn", admin)
        changed = {s["name"] for s in first["pgbouncer_current"]["settings"] if s["changes"]}
        assert {"default_pool_size", "max_client_conn", "max_db_connections"} <= changed
        assert all(s["restart"] is False for s in first["pgbouncer_current"]["settings"])
        differs = next(f for f in first["findings"] if f["code"] == "pgbouncer_differs")
        assert "then run RELOAD;" in differs["advice"] and "restart" not in differs["advice"]
        assert differs["action"] == "RELOAD;"
        # apply the block to the ini and run the finding's action, as an administrator would
        bouncer.settings.update(values)
        bouncer.write_config()
        bouncer.admin(differs["action"])
        reloaded = recommend_json(*ARGS, *server, "--pgbouncer-dsn", admin)
        shown = config(bouncer)
    cmp = reloaded["pgbouncer_current"]
    assert [(s["name"], s["current"]) for s in cmp["settings"]] == [(k, shown[k]["value"]) for k in KEYS]
    assert all(s["changes"] is False for s in cmp["settings"]), cmp["settings"]
    assert not {"pgbouncer_differs", "exceeds_postgres"} & codes(reloaded)
    # and a PgBouncer started from the block as written
    with running_pgbouncer(pg, settings=values) as fresh:
        doc = recommend_json(*ARGS, *server, "--pgbouncer-dsn", fresh.dsn(dbname="pgbouncer"))
    assert all(s["changes"] is False for s in doc["pgbouncer_current"]["settings"])
    assert all(d["changes"] == [] for d in doc["pgbouncer_current"]["databases"])
    assert not {"pgbouncer_differs", "exceeds_postgres"} & codes(doc)


def test_table_output_shows_current_and_apply(pg: Cluster) -> None:
    with running_pgbouncer(pg, pool_size=9) as bouncer, bouncer.connect() as client:
        client.execute("SELECT 1")  # the `*` entry makes the database `postgres` on first use
        result = run_cli(
            "recommend", *ARGS, "--pgbouncer-dsn", bouncer.dsn(dbname="pgbouncer"), "-f", "plain"
        )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("setting") and "apply" in line)
    assert header.split()[:4] == ["setting", "value", "current", "apply"]
    row = next(line for line in lines if line.startswith("default_pool_size"))
    assert row.split()[:4] == ["default_pool_size", "4", "9", "RELOAD"]
    assert "PgBouncer databases (SHOW DATABASES)" in result.stdout
    assert "the running pools may open 9 server connections (give --dsn" in result.stdout


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("--no-pgbouncer",), "--no-pgbouncer plans without PgBouncer"),
        (("--snapshot", "x.json"), "give either --pgbouncer-dsn or --snapshot"),
    ],
)
def test_contradictions_are_one_line(args: tuple[str, ...], text: str) -> None:
    result = run_cli("recommend", "--ram", "2G", "--pgbouncer-dsn", "host=127.0.0.1 dbname=pgbouncer", *args)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert text in result.stderr


def test_admin_commands_in_the_action_work_when_run(pg: Cluster) -> None:
    """paused / disabled: the finding's action, RESUME / ENABLE, run on the console by the test (pgdoctor
    never does), undoes it, also for a database name the console takes only quoted."""
    with running_pgbouncer(pg, databases={"App-DB": "", "plain_db": ""}) as bouncer:
        admin = bouncer.dsn(dbname="pgbouncer")
        bouncer.admin('PAUSE "App-DB"')
        bouncer.admin("DISABLE plain_db")
        result = run_cli("pgbouncer", "--dsn", admin, "-f", "json")
        assert result.returncode == 0, result.stderr
        findings = {(f["code"], f["subject"]): f for f in json.loads(result.stdout)["findings"]}
        resume = findings[("paused", "App-DB")]["action"]
        enable = findings[("disabled", "plain_db")]["action"]
        assert (resume, enable) == ('RESUME "App-DB";', "ENABLE plain_db;")
        for action in (resume, enable):
            bouncer.admin(action)  # as printed
        dbs = {d["name"]: d for d in bouncer.admin("SHOW DATABASES")}
        assert (dbs["App-DB"]["paused"], dbs["plain_db"]["disabled"]) == (0, 0)
        again = json.loads(run_cli("pgbouncer", "--dsn", admin, "-f", "json").stdout)
        assert not {"paused", "disabled"} & codes(again)
