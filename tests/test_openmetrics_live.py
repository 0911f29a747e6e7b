"""`--format openmetrics` against a real incident on PostgreSQL 15 and 18, one per server shared by this
module: an application idle in a transaction that holds a row lock, two sessions of another queued behind
it, a third application's connections piled up idle until over 80% of the usable slots are taken, and
one with quotes and a backslash in its name. Every command's output passes `promtool check metrics`, its
figures are the server's, and the shipped alert rules, fed the real output, fire exactly the alerts its
values call for. (PgBouncer's clients waiting: tests/test_pgbouncer_live.py.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import invoke, run_cli
from tests.incidents import Sessions, wait_for_lock_waits
from tests.pgcluster import Cluster
from tests.promtool import Series, check_metrics, needs_promtool, one, parse, run_rule_tests, values

pytestmark = [pytest.mark.server, needs_promtool]

HOLDER, WAITER, LEAKY = "om_holder", "om_waiter", "om_leaky"
ODD = 'om "odd" \\ name'  # PostgreSQL keeps quotes and backslashes in application_name
USAGE = 0.85  # the share of the usable slots the incident takes: over PostgresConnectionsNearLimit's 0.8
# thresholds no age in this module reaches, so two runs a few seconds apart find the same
CALM = (
    "--idle-xact-warn",
    "3600",
    "--idle-xact-crit",
    "7200",
    "--blocked-crit",
    "3600",
    "--leak-idle-age",
    "0",
)
CALM_LOCKS = ("--wait-warn", "3600", "--wait-crit", "7200")


@dataclass
class Incident:
    pg: Cluster
    usable: int
    holder: int
    waiters: list[int]
    leaky: int  # idle sessions of LEAKY

    def run(self, command: str, *args: str) -> tuple[int, str]:
        result = run_cli(command, "-d", self.pg.dsn(), "-f", "openmetrics", *args)
        assert result.returncode in (0, 1), result.stderr
        check_metrics(result.stdout)
        return result.returncode, result.stdout

    def clients(self) -> int:
        rows = self.pg.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND pid <> pg_backend_pid()"
        )
        return int(rows[0][0])


@pytest.fixture(scope="module")
def incident(pg: Cluster) -> Iterator[Incident]:
    sessions = Sessions(pg)
    try:
        pg.sql("DROP TABLE IF EXISTS om_jobs")
        pg.sql("CREATE TABLE om_jobs (id int PRIMARY KEY, n int)")
        pg.sql("INSERT INTO om_jobs VALUES (1, 0)")
        holder = sessions.idle_in_transaction(HOLDER, "UPDATE om_jobs SET n = n + 1 WHERE id = 1")
        waiters = [sessions.send(WAITER, "UPDATE om_jobs SET n = n + 1 WHERE id = 1") for _ in range(2)]
        wait_for_lock_waits(pg, waiters, timeout=30)
        sessions.idle(ODD)
        row = pg.sql(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int"
            " - coalesce(current_setting('reserved_connections', true)::int, 0)"
        )
        usable = int(row[0][0])
        inc = Incident(pg, usable, holder, waiters, 0)
        inc.leaky = int(usable * USAGE) + 1 - inc.clients()
        sessions.idle(LEAKY, inc.leaky)
        yield inc
    finally:
        sessions.close()


def json_of(inc: Incident, command: str, *args: str) -> dict[str, Any]:
    result = invoke(command, "-d", inc.pg.dsn(), "-f", "json", *args)
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def findings(series: Series, command: str) -> set[tuple[str, str, str]]:
    return {
        (d["code"], d["severity"], d["subject"])
        for d in map(dict, values(series, "pgdoctor_finding", command=command))
    }


def test_connections(incident: Incident) -> None:
    """Capacity, sessions per application and class, the idle transaction's age, the findings; exit 1
    with --fail-on warning as in every format; the shipped rules fed this output fire the usage alert
    only (the idle sessions are under 100, the transactions young)."""
    code, text = incident.run("connections", *CALM, "--fail-on", "warning")
    assert code == 1
    series = parse(text)
    assert one(series, "pgdoctor_up", command="connections") == 1
    assert one(series, "pgdoctor_usable_connections") == incident.usable
    clients = one(series, "pgdoctor_client_connections")
    assert clients == incident.leaky + 4  # the holder, two waiters, ODD
    assert one(series, "pgdoctor_connections_usage_ratio") == pytest.approx(clients / incident.usable, 1e-3)
    assert one(series, "pgdoctor_connections_usage_ratio") > 0.8
    sessions = {(d["application"], d["class"]): v for d, v in
                ((dict(k), v) for k, v in values(series, "pgdoctor_sessions").items())}  # fmt: skip
    assert sessions == {
        (LEAKY, "idle"): incident.leaky,
        (HOLDER, "idle_in_transaction"): 1,
        (WAITER, "blocked"): 2,
        (ODD, "idle"): 1,
    }
    age = one(series, "pgdoctor_oldest_idle_in_transaction_seconds", application=HOLDER)
    later = incident.pg.sql(
        "SELECT extract(epoch FROM now() - state_change) FROM pg_stat_activity WHERE pid = %s",
        [incident.holder],
    )[0][0]
    assert 0 < age <= float(later)
    assert one(series, "pgdoctor_oldest_transaction_seconds", application=HOLDER) >= age
    got = findings(series, "connections")
    assert ("capacity", "warning", "server") in got
    assert any(code == "idle_connections" and subject == LEAKY for code, _, subject in got)
    expected = json_of(incident, "connections", *CALM)["findings"]
    assert {f["code"] for f in expected} == {code for code, _, _ in got}
    run_rule_tests({"db": text}, [{"alertname": "PostgresConnectionsNearLimit", "instance": "db"}])


def test_connections_ps(incident: Incident) -> None:
    """From the process list: no application names, sessions by role; the capacity from the files."""
    _, text = incident.run("connections", "--ps")
    series = parse(text)
    assert one(series, "pgdoctor_usable_connections") == incident.usable
    assert one(series, "pgdoctor_client_connections") == incident.leaky + 4
    assert {dict(k)["application"] for k in values(series, "pgdoctor_sessions")} == {""}
    idle = sum(values(series, "pgdoctor_sessions", user="postgres", **{"class": "idle"}).values())
    assert idle == incident.leaky + 1


def test_connections_sample(incident: Incident) -> None:
    _, text = incident.run("connections", "--sample", "1s")
    series = parse(text)
    assert one(series, "pgdoctor_sample_duration_seconds") >= 0.9
    assert one(series, "pgdoctor_sample_usable_connections") == incident.usable
    assert one(series, "pgdoctor_sample_connections_held_max", application=LEAKY) == incident.leaky
    idle_share = one(series, "pgdoctor_sample_time_share_ratio", application=LEAKY, **{"class": "idle"})
    assert idle_share == pytest.approx(1.0)
    assert one(series, "pgdoctor_sample_connections_held_max", application=ODD) == 1


def test_locks(incident: Incident) -> None:
    _, text = incident.run("locks", *CALM_LOCKS)
    series = parse(text)
    assert one(series, "pgdoctor_lock_waiting_sessions", application=WAITER) == 2
    assert one(series, "pgdoctor_lock_wait_longest_seconds", application=WAITER) > 0
    assert one(series, "pgdoctor_lock_root_blockers", application=HOLDER) == 1
    assert one(series, "pgdoctor_lock_root_blocked_sessions", application=HOLDER) == 2
    assert one(series, "pgdoctor_lock_root_transaction_seconds", application=HOLDER) > 0
    assert one(series, "pgdoctor_deadlock_groups") == 0
    assert 0 < one(series, "pgdoctor_lock_table_usage_ratio") < 1
    got = findings(series, "locks")
    assert ("idle_in_transaction_blocker", "critical", HOLDER) in got
    assert {f["code"] for f in json_of(incident, "locks", *CALM_LOCKS)["findings"]} == {c for c, _, _ in got}


def test_slow_queries(incident: Incident) -> None:
    """The top statements by queryid: shares of the total time, calls, mean = time / calls."""
    _, text = incident.run("slow-queries", "--limit", "5")
    series = parse(text)
    assert one(series, "pgdoctor_up", command="slow-queries") == 1
    shares = values(series, "pgdoctor_statement_time_share_ratio")
    assert 0 < len(shares) <= 5
    assert 0 < sum(shares.values()) <= 1.0001
    for labels in shares:
        key = dict(labels)
        int(key["queryid"])  # pg_stat_statements' queryid, in decimal
        calls = one(series, "pgdoctor_statement_calls", **key)
        total = one(series, "pgdoctor_statement_time_seconds", **key)
        assert calls >= 1
        assert one(series, "pgdoctor_statement_mean_seconds", **key) == pytest.approx(total / calls, rel=1e-3)
    assert one(series, "pgdoctor_statements_exec_time_seconds") >= sum(
        values(series, "pgdoctor_statement_time_seconds").values()
    ) * (1 - 1e-6)
    assert one(series, "pgdoctor_statements_max_entries") >= 100
