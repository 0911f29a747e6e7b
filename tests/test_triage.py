"""`pgdoctor triage` without a server: the recorded incidents (fixtures/incident-pg*.json), the command
line's wiring through CliRunner, and the merge rules on findings made for them."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pgdoctor.analyze.findings import Finding, Severity
from pgdoctor.analyze.problems import (
    Sourced,
    _Tree,
    actions_of,
    as_triage_note,
    group_problem,
    merged_groups,
    tree_of,
)
from tests.conftest import FIXTURES, invoke

# the recorded incident: training_manager's idle transaction (root) holds up three job_api updates
ROOTS = {"pg18": 15643, "pg15": 10129}
INCIDENTS = {name: FIXTURES / f"incident-{name}.json" for name in ROOTS}


def triage(snapshot: Path, *args: str) -> dict[str, Any]:
    result = invoke("triage", "--snapshot", str(snapshot), "-f", "json", *args)
    assert result.exit_code == 0, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


@pytest.mark.parametrize("name", ROOTS)
def test_the_recorded_incident(name: str) -> None:
    doc = triage(INCIDENTS[name])
    problems = doc["problems"]
    assert isinstance(problems, list)
    root = ROOTS[name]
    # one problem for the root blocker, from three commands' five findings
    assert [(p["rank"], p["severity"], p["subject"]) for p in problems] == [
        (1, "critical", f"pid {root} (training_manager)"),
        (2, "critical", "data_loader_worker"),
        (3, "critical", "server"),
        (4, "warning", "feature_service"),
    ]
    top = problems[0]
    assert top["kind"] == "root_blocker" and top["root_pid"] == root
    assert top["codes"] == [
        "idle_in_transaction",
        "blocked",
        "idle_in_transaction_blocker",
        "long_wait",
        "long_running",
    ]
    assert top["sources"] == ["connections", "locks", "slow-queries"]
    # the guarded statement that ends the root alone, then what prevents a recurrence; never the
    # waiters' cancels nor the other idle transactions of its application
    ends_root = f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = {root} AND "
    assert top["actions"][0].startswith(ends_root)
    assert top["actions"][1:] and all(a.startswith("ALTER ROLE ") for a in top["actions"][1:])
    assert top["impact"] == {"sessions_blocked": 3, "clients_waiting": 0, "slots_held": 15}
    assert problems[1]["impact"]["slots_held"] == 127 and problems[1]["codes"] == ["idle_connections"]
    assert problems[2]["codes"] == ["capacity"]
    assert problems[3]["codes"] == ["long_running"] and problems[3]["sources"] == ["slow-queries"]
    findings = doc["findings"]
    assert isinstance(findings, list)
    assert [f["code"] for f in findings if f["severity"] == "info"] == ["stats_reset"]
    # every pid a problem names is a session of the recorded server
    recorded = {r["pid"] for r in json.loads(INCIDENTS[name].read_text())["activity"]}
    assert {pid for p in problems for pid in p["pids"]} <= recorded


@pytest.mark.parametrize("name", ROOTS)
def test_the_sub_reports_are_each_commands_json(name: str) -> None:
    doc = triage(INCIDENTS[name])
    for command, key, extra in (
        ("connections", "connections", []),
        ("locks", "locks", []),
        ("slow-queries", "slow_queries", ["--sort", "total", "-n", "10"]),
    ):
        own = invoke(command, "--snapshot", str(INCIDENTS[name]), "-f", "json", *extra)
        assert own.exit_code == 0, own.stderr
        assert doc[key] == json.loads(own.stdout), command
    assert doc["pgbouncer"] is None


def test_every_kind_of_lock_picture() -> None:
    """fixtures/locks-pg18.json: five root blockers (idle in transaction, active, idle with advisory
    locks, two roots of one waiter) and a deadlock: one problem each, each with its own lock findings."""
    doc = triage(FIXTURES / "locks-pg18.json")
    problems = doc["problems"]
    roots = [p["root_pid"] for p in problems if p["kind"] == "root_blocker"]
    assert len(roots) == len(set(roots)) == len(doc["locks"]["roots"]) == 5
    assert [p["kind"] for p in problems] == ["root_blocker"] * 5 + ["deadlock"]
    for p in problems[:5]:
        app = p["subject"].split("(", 1)[1].rstrip(")")
        waits = [doc["findings"][i] for i in p["findings"] if doc["findings"][i]["code"] == "long_wait"]
        assert [w["subject"] for w in waits] == [app], p["subject"]  # behind its own root only
        assert p["root_pid"] in p["pids"] and f"WHERE pid = {p['root_pid']} AND " in p["actions"][0]
    deadlock = problems[5]
    assert deadlock["message"].startswith("sessions 24128 -> 24131 wait on each other in a cycle")
    assert deadlock["codes"] == ["blocked", "deadlock_cycle"] and deadlock["pids"] == [24128, 24131]
    assert problems[4]["message"].startswith("root blocker pid 24116 (jobs_leader, idle for 20s)")


def test_a_pgbouncer_pool_is_one_problem(tmp_path: Path) -> None:
    """The snapshot with PgBouncer's data (a full pool, three clients queued): its pool's findings are one
    problem, ranked by the clients it holds up, and the pgbouncer report is the command's own JSON."""
    from tests.test_cli_wiring import write_pgbouncer_snapshot

    path = write_pgbouncer_snapshot(tmp_path / "pgb.json")
    doc = triage(path)
    pools = [p for p in doc["problems"] if p["sources"] == ["pgbouncer"]]
    assert len(pools) == 1
    pool = pools[0]
    assert pool["subject"] == "app/web" and pool["severity"] == "warning"
    assert pool["codes"][:2] == ["clients_waiting", "pool_full"]
    assert pool["impact"] == {"sessions_blocked": 0, "clients_waiting": 3, "slots_held": 0}
    # after the critical problems; before the warning that holds up no one (58 long statements)
    assert [p["subject"] for p in doc["problems"]][3:] == ["app/web", "feature_service"]
    own = invoke("pgbouncer", "--snapshot", str(path), "-f", "json")
    assert doc["pgbouncer"] == json.loads(own.stdout)
    text = invoke("triage", "--snapshot", str(path), "-f", "plain").stdout
    assert "PgBouncer 1.18.0: 7 clients of max_client_conn 100, 3 waiting in 1 pool(s)" in text


@pytest.mark.parametrize("fmt", ["table", "plain", "markdown", "csv"])
def test_every_format(fmt: str) -> None:
    result = invoke("triage", "--snapshot", str(INCIDENTS["pg18"]), "-f", fmt)
    assert result.exit_code == 0, result.stderr
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(result.stdout)))
        assert rows[0] == ["#", "severity", "subject", "held up", "slots", "codes", "from", "what"]
        assert [r[2] for r in rows[1:]] == [
            "pid 15643 (training_manager)",
            "data_loader_worker",
            "server",
            "feature_service",
        ]
        return
    out = result.stdout
    ends_root = "sql: SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = 15643 AND "
    assert "What to do first" in out and ends_root in out
    assert (
        out.index("What to do first")
        < out.index("Problems, most urgent first")
        < out.index("Who blocks whom")
    )
    assert "stats_reset" in out  # the note


def test_full_keeps_whole_messages() -> None:
    short = invoke("triage", "--snapshot", str(INCIDENTS["pg18"]), "-f", "plain").stdout
    whole = invoke("triage", "--snapshot", str(INCIDENTS["pg18"]), "-f", "plain", "--full").stdout
    tail = "its last statement: UPDATE jobs SET status = 'training' WHERE id = 1"
    assert tail in whole and tail not in short


@pytest.mark.parametrize(("fail_on", "code"), [("never", 0), ("info", 1), ("warning", 1), ("critical", 1)])
def test_fail_on(fail_on: str, code: int) -> None:
    result = invoke("triage", "--snapshot", str(INCIDENTS["pg15"]), "-f", "json", "--fail-on", fail_on)
    assert result.exit_code == code, result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-d", "host=nowhere"], "give either --dsn or --snapshot, not both"),
        (["--pgbouncer-dsn", "host=nowhere"], "--pgbouncer-dsn reads a live PgBouncer: not with --snapshot"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    result = invoke("triage", "--snapshot", str(INCIDENTS["pg18"]), *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {message}")


def test_a_snapshot_without_statements_is_refused(tmp_path: Path) -> None:
    doc = json.loads(INCIDENTS["pg18"].read_text())
    del doc["datasets"]["statements"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc))
    result = invoke("triage", "--snapshot", str(path))
    assert result.exit_code == 2 and "has no 'statements' data" in result.stderr


# --- the merge rules, on findings made for them ---------------------------------------------------


def finding(code: str, subject: str, pids: tuple[int, ...] = (), sev: Severity = Severity.WARNING) -> Finding:
    return Finding(sev, code, subject, f"{code} of {subject}", "", pids)


def test_a_finding_goes_to_the_tree_it_names_most_sessions_of() -> None:
    trees = [_Tree("root_blocker", frozenset({1, 2, 3, 4}), 3), _Tree("root_blocker", frozenset({10, 11}), 1)]
    assert tree_of(finding("blocked", "app", (2, 3, 11)), trees) == 0
    assert tree_of(finding("blocked", "app", (2, 10, 11)), trees) == 1
    # a lock finding joins on any session; another only when all of its sessions are in the tree
    assert tree_of(finding("lock_queue", "t", (11, 99)), trees) == 1
    assert tree_of(finding("long_running", "app", (11, 99)), trees) is None
    assert tree_of(finding("long_running", "app", (10, 11)), trees) == 1
    assert tree_of(finding("capacity", "server"), trees) is None


def test_findings_merge_on_a_common_session_a_repeat_or_the_same_pool() -> None:
    found = [
        Sourced("connections", finding("idle_in_transaction", "app", (5, 6))),
        Sourced("connections", finding("xmin_horizon", "app", (6,))),
        Sourced("connections", finding("insufficient_privilege", "monitor", (7,))),
        Sourced("locks", finding("insufficient_privilege", "monitor", (8,))),
        Sourced("pgbouncer", finding("clients_waiting", "app/app")),
        Sourced("pgbouncer", finding("pool_full", "app/app")),
        Sourced("pgbouncer", finding("client_limit", "pgbouncer")),
        Sourced("pgbouncer", finding("exceeds_postgres", "pgbouncer")),
        Sourced("connections", finding("idle_connections", "app", (9,))),
    ]
    groups = merged_groups(list(range(len(found))), found)
    assert groups == [[0, 1], [2, 3], [4, 5], [6], [7], [8]]


@dataclass(frozen=True)
class ActionFinding(Finding):
    """A Finding with a field another analysis may add (a ready statement): triage passes it through."""

    action: str = ""

    def to_json(self) -> dict[str, object]:
        return {**super().to_json(), "action": self.action}


def test_extra_fields_of_a_finding_pass_through() -> None:
    kill = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'app';"
    f = ActionFinding(Severity.CRITICAL, "extension_not_installed", "pg_stat_statements", "m", "", (), kill)
    note = as_triage_note(Sourced("slow-queries", f))
    assert note.finding.severity is Severity.INFO and isinstance(note.finding, ActionFinding)
    assert actions_of([f, f, finding("capacity", "server")]) == [kill]
    problem = group_problem([0], [Sourced("connections", f)], None)
    assert problem.actions == (kill,)


def test_load_datasets_is_load_dataset_once() -> None:
    """triage --snapshot reads the file once: the same datasets as one load_dataset each; a dataset
    named optional that the snapshot lacks is None, one it does not name is an error."""
    from pgdoctor.collect.connections import ConnectionsData
    from pgdoctor.collect.locks import LocksData
    from pgdoctor.collect.pgbouncer import PgBouncerData
    from pgdoctor.collect.statements import StatementsData
    from pgdoctor.errors import PgDoctorError
    from pgdoctor.snapshot import load_dataset, load_datasets

    path = INCIDENTS["pg18"]
    wanted: dict[str, type] = {
        "connections": ConnectionsData,
        "locks": LocksData,
        "statements": StatementsData,
    }
    found = load_datasets(path, {**wanted, "pgbouncer": PgBouncerData}, optional=("pgbouncer",))
    assert found["pgbouncer"] is None
    for name, cls in wanted.items():
        assert found[name] == load_dataset(path, name, cls)
    assert found["connections"].activity is found["locks"].activity  # decoded once, shared
    with pytest.raises(PgDoctorError, match="has no 'pgbouncer' data"):
        load_datasets(path, {"pgbouncer": PgBouncerData})
