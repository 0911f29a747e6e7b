"""`pgdoctor triage` on a real server outside an incident: healthy, seen by a role without
pg_read_all_stats, in a database without pg_stat_statements, and with PgBouncer in front. (The incident
is tests/test_triage_live.py: its sessions live for that module, these tests end every session.)"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.incidents import Sessions, ensure_database, ensure_role
from tests.pgbouncer import available as pgbouncer_available
from tests.pgbouncer import running_pgbouncer
from tests.pgcluster import Cluster
from tests.test_triage_live import triage_json

pytestmark = pytest.mark.server


def test_a_healthy_server_has_no_problems(pg: Cluster, sessions: Sessions) -> None:
    pg.terminate_others()
    pg.sql("SELECT pg_stat_statements_reset()")
    sessions.idle("web", 3)
    doc, code = triage_json(pg, "--fail-on", "warning")
    assert code == 0
    assert doc["problems"] == []
    assert all(f["severity"] == "info" for f in doc["findings"])
    text = run_cli("triage", "-d", pg.dsn(), "-f", "plain", "--fail-on", "warning")
    assert text.returncode == 0, text.stderr
    assert "No problems" in text.stdout


@pytest.mark.skipif(not pgbouncer_available(), reason="PgBouncer not installed")
def test_pgbouncer_joins_the_triage(pg: Cluster, sessions: Sessions, tmp_path: Any) -> None:
    with running_pgbouncer(pg, pool_mode="transaction", pool_size=2) as bouncer:
        via = bouncer.connect(application_name="via_bouncer")
        via.execute("SELECT 1")
        admin = bouncer.dsn(dbname="pgbouncer")
        doc, _ = triage_json(pg, "--pgbouncer-dsn", admin)
        assert doc["pgbouncer"]["command"] == "pgbouncer"
        assert any(p["database"] == "postgres" for p in doc["pgbouncer"]["pools"])
        # the snapshot taken with --pgbouncer-dsn holds the pooler's data; triage reads it back
        snap = tmp_path / "snap.json"
        taken = run_cli("snapshot", "-d", pg.dsn(), "--pgbouncer-dsn", admin, "-o", str(snap))
        assert taken.returncode == 0, taken.stderr
        via.close()
    offline = run_cli("triage", "--snapshot", str(snap), "-f", "json")
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout)["pgbouncer"]["command"] == "pgbouncer"


def test_a_role_without_pg_read_all_stats(pg: Cluster, sessions: Sessions) -> None:
    """Other roles' sessions hidden: one insufficient_privilege problem however many commands say so,
    naming the GRANT, and exit 4 (the report is incomplete) unless --fail-on gives 1."""
    ensure_role(pg, "triage_monitor")
    sessions.idle("web", 2)
    dsn = pg.dsn(user="triage_monitor")
    result = run_cli("triage", "-d", dsn, "-f", "json")
    assert result.returncode == 4, result.stderr
    doc = json.loads(result.stdout)
    hidden = [p for p in doc["problems"] if "insufficient_privilege" in p["codes"]]
    assert len(hidden) == 1
    assert hidden[0]["advice"].startswith("GRANT pg_read_all_stats TO triage_monitor")
    said = {doc["findings"][i]["command"] for i in hidden[0]["findings"]}
    assert said == set(hidden[0]["sources"]) and "connections" in said
    assert run_cli("triage", "-d", dsn, "-f", "json", "--fail-on", "warning").returncode == 1


def test_pg_stat_statements_missing_is_a_note(pg: Cluster, sessions: Sessions) -> None:
    """A database where the extension is not created: slow-queries exits 6; triage notes it and goes on."""
    ensure_database(pg, "triage_noext")
    pg.terminate_others()
    dsn = pg.dsn(dbname="triage_noext")
    assert run_cli("slow-queries", "-d", dsn, "-f", "json").returncode == 6
    result = run_cli("triage", "-d", dsn, "-f", "json", "--fail-on", "warning")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["problems"] == []
    (note,) = [f for f in doc["findings"] if f["code"] == "extension_not_created"]
    assert note["severity"] == "info" and note["command"] == "slow-queries"
    # the sub-report is slow-queries' own, with its own severity
    (own,) = [f for f in doc["slow_queries"]["findings"] if f["code"] == "extension_not_created"]
    assert own["severity"] == "critical"


def test_pgbouncer_that_cannot_be_read_is_reported_with_the_postgresql_side(
    pg: Cluster, sessions: Sessions
) -> None:
    """Mid-incident the pooler may be what is down: its error is a problem, the server is still read."""
    pg.terminate_others()
    pg.sql("SELECT pg_stat_statements_reset()")
    sessions.idle("web", 2)
    nowhere = "host=127.0.0.1 port=1 dbname=pgbouncer user=stats connect_timeout=2"
    result = run_cli("triage", "-d", pg.dsn(), "--pgbouncer-dsn", nowhere, "-f", "json")
    assert result.returncode == 3  # cannot connect, as documented
    assert result.stderr.startswith("error: PgBouncer: ")
    doc = json.loads(result.stdout)
    assert doc["pgbouncer"] is None and doc["pgbouncer_error"]
    assert [p["codes"] for p in doc["problems"]] == [["pgbouncer_unreachable"]]
    assert doc["problems"][0]["severity"] == "critical"
    assert doc["connections"]["capacity"]["clients"] >= 2  # the PostgreSQL side is all there
    failing = run_cli(
        "triage", "-d", pg.dsn(), "--pgbouncer-dsn", nowhere, "-f", "plain", "--fail-on", "critical"
    )
    assert failing.returncode == 1
    assert "PgBouncer: not read (" in failing.stdout
