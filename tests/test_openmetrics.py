"""`--format openmetrics` without a server: every command on the recorded snapshots (promtool accepts
the output; the figures are the JSON report's), hostile label values, pgdoctor_up 0 on failure, exit
codes, the README's metrics table against METRICS, and the shipped alert rules (`promtool check rules`,
`promtool test rules` on tests/promtool/, which must also fail on a wrong rule)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pgdoctor.render.openmetrics import EVERY, METRICS, Family, down, exposition, family, union
from tests.conftest import FIXTURES, ROOT, invoke
from tests.promtool import RULES, check_metrics, needs_promtool, one, parse, promtool, run_rule_tests, values

pytestmark = needs_promtool

RUNS = [
    ("connections", FIXTURES / "incident-pg15.json"),
    ("connections", FIXTURES / "incident-pg18.json"),
    ("locks", FIXTURES / "locks-pg15.json"),
    ("locks", FIXTURES / "locks-pg18.json"),
    ("slow-queries", FIXTURES / "statements-pg18-1.12.json"),
    ("slow-queries", FIXTURES / "statements-pg14-1.8.json"),
    ("slow-queries", FIXTURES / "statements-pg18-not-preloaded.json"),
    ("pgbouncer", FIXTURES / "format-1" / "pgbouncer-pg15.json"),
]


def run(command: str, snapshot: Path, *extra: str) -> tuple[int, str, dict[str, Any]]:
    """The command's openmetrics output and exit code, and its JSON report of the same snapshot."""
    metrics = invoke(command, "--snapshot", str(snapshot), "-f", "openmetrics", *extra)
    report = invoke(command, "--snapshot", str(snapshot), "-f", "json", *extra)
    assert metrics.exit_code == report.exit_code, (metrics.stderr, report.stderr)  # same exit codes
    return metrics.exit_code, metrics.stdout, json.loads(report.stdout)


@pytest.mark.parametrize(("command", "snapshot"), RUNS, ids=[f"{c}-{s.stem}" for c, s in RUNS])
def test_every_command_on_recorded_snapshots(command: str, snapshot: Path) -> None:
    code, text, report = run(command, snapshot)
    check_metrics(text)
    series = parse(text)
    assert {name for name, _ in series} <= set(METRICS)
    for name, labels in series:
        spec = METRICS[name]
        assert {k for k, _ in labels} == set(spec.labels), name
        assert command in spec.commands or name in ("pgdoctor_up", "pgdoctor_info", "pgdoctor_finding")
    # one gauge per finding, exactly the report's
    findings = {(f["code"], f["severity"], f["subject"]) for f in report["findings"]}
    gauges = values(series, "pgdoctor_finding", command=command)
    assert {(d["code"], d["severity"], d["subject"]) for d in map(dict, gauges)} == findings
    assert set(gauges.values()) <= {1.0}
    up = one(series, "pgdoctor_up", command=command)
    assert up == (0.0 if code == 6 else 1.0)  # pg_stat_statements not loaded: the source is unusable
    assert one(series, "pgdoctor_info", command=command) == 1.0
    check_figures(command, series, report)


@pytest.mark.parametrize("snapshot", ["incident-pg15.json", "incident-pg18.json"])
def test_triage_is_the_union_of_its_commands(snapshot: str) -> None:
    """triage's exposition: every measurement of connections, locks and slow-queries on the same snapshot
    (the same figures), and one finding gauge per finding of every command, under command="triage"."""
    path = FIXTURES / snapshot
    code, text, report = run("triage", path)
    check_metrics(text)
    series = parse(text)
    measured: dict[Any, float] = {}
    for command in ("connections", "locks", "slow-queries"):
        sub = parse(invoke(command, "--snapshot", str(path), "-f", "openmetrics").stdout)
        measured |= {
            k: v for k, v in sub.items() if k[0] not in ("pgdoctor_up", "pgdoctor_info", "pgdoctor_finding")
        }
    assert measured, "the commands measured nothing"
    mine = {
        k: v for k, v in series.items() if k[0] not in ("pgdoctor_up", "pgdoctor_info", "pgdoctor_finding")
    }
    assert mine == measured
    findings = {(f["code"], f["severity"], f["subject"]) for f in report["findings"]}
    gauges = values(series, "pgdoctor_finding", command="triage")
    assert {(d["code"], d["severity"], d["subject"]) for d in map(dict, gauges)} == findings
    assert one(series, "pgdoctor_up", command="triage") == 1.0
    assert code == 0


def check_figures(command: str, series: Any, report: dict[str, Any]) -> None:
    """The measurements are the JSON report's figures."""
    if command == "connections":
        cap = report["capacity"]
        assert one(series, "pgdoctor_usable_connections") == cap["usable"]
        assert one(series, "pgdoctor_max_connections") == cap["max_connections"]
        assert one(series, "pgdoctor_client_connections") == cap["clients"]
        ratio = one(series, "pgdoctor_connections_usage_ratio")
        assert ratio == cap["clients"] / cap["usable"] == pytest.approx(cap["usage_pct"] / 100, abs=0.0005)
        for g in report["groups"]:  # grouped by application: the sessions summed over roles and databases
            for cls in ("active", "idle", "idle_in_transaction", "blocked"):
                got = sum(
                    values(series, "pgdoctor_sessions", application=g["key"], **{"class": cls}).values()
                )
                assert got == g[cls], (g["key"], cls)
            if g["oldest_xact_s"] is not None:
                age = one(series, "pgdoctor_oldest_transaction_seconds", application=g["key"])
                assert age == pytest.approx(g["oldest_xact_s"], abs=0.001)
    elif command == "locks":
        waiting = sum(values(series, "pgdoctor_lock_waiting_sessions").values())
        assert waiting == len(report["waiting"]) > 0
        roots = sum(values(series, "pgdoctor_lock_root_blockers").values())
        assert roots == len(report["roots"]) > 0
    elif command == "slow-queries" and report["statements"]:
        for s in report["statements"]:
            key = {"queryid": str(s["queryid"]), "database": s["database"], "user": s["user"]}
            assert one(series, "pgdoctor_statement_calls", **key) == s["calls"]
            assert one(series, "pgdoctor_statement_time_share_ratio", **key) == pytest.approx(
                s["pct_total"] / 100
            )
        assert sum(values(series, "pgdoctor_statement_time_share_ratio").values()) <= 1.0001
    elif command == "pgbouncer":
        for p in report["pools"]:
            pool = {"database": p["database"], "user": p["user"]}
            assert one(series, "pgdoctor_pgbouncer_pool_clients", **pool, state="waiting") == p["cl_waiting"]
            assert one(series, "pgdoctor_pgbouncer_pool_clients", **pool, state="active") == p["cl_active"]
            assert one(series, "pgdoctor_pgbouncer_pool_servers", **pool, state="active") == p["sv_active"]
            assert one(series, "pgdoctor_pgbouncer_pool_maxwait_seconds", **pool) == p["maxwait_s"]


HOSTILE = 'evil "app"\n\\n\x1b[2J \u202eünï {x="1"} # EOF'


def test_label_values_are_escaped_and_read_back_exactly() -> None:
    """An application name with quotes, a newline, a backslash, ESC, a bidi override, unicode and text that
    looks like exposition syntax is one label value: read back byte for byte, and promtool accepts it."""
    from pgdoctor.analyze.connections import analyze
    from pgdoctor.collect.connections import ConnectionsData
    from pgdoctor.render.openmetrics_reports import connections_metrics
    from pgdoctor.snapshot import load_dataset

    data = load_dataset(FIXTURES / "incident-pg18.json", "connections", ConnectionsData)
    rows = [
        replace(r, application_name=HOSTILE) if r.application_name == "training_manager" else r
        for r in data.activity
    ]
    report = analyze(replace(data, activity=rows))
    text = exposition("connections", connections_metrics(report), report.findings)
    check_metrics(text)
    series = parse(text)
    assert one(series, "pgdoctor_sessions", application=HOSTILE, **{"class": "idle_in_transaction"}) == 12
    assert one(series, "pgdoctor_finding", code="idle_in_transaction", subject=HOSTILE) == 1
    assert text.splitlines().count("# EOF") == 1  # the one in the name is inside a quoted label value


def test_a_failed_run_says_pgdoctor_up_0() -> None:
    """No server: exit 3 and the error line, as in every format, and a whole exposition with
    pgdoctor_up 0 on stdout (a textfile collector shows the failure, not the last good file)."""
    result = invoke("locks", "-d", "host=127.0.0.1 port=1", "--timeout", "2", "-f", "openmetrics")
    assert result.exit_code == 3
    assert result.stderr.startswith("error: cannot connect")
    check_metrics(result.stdout)
    assert one(parse(result.stdout), "pgdoctor_up", command="locks") == 0
    assert down("locks") == result.stdout
    # the shipped rules fed this output: pgdoctor's own alert fires, and nothing else
    run_rule_tests(
        {"db": result.stdout}, [{"alertname": "PgDoctorFailing", "instance": "db", "command": "locks"}]
    )


def test_usage_errors_write_no_metrics() -> None:
    bad = invoke("locks", "-d", "x", "--snapshot", str(FIXTURES / "locks-pg18.json"), "-f", "openmetrics")
    assert (bad.exit_code, bad.stdout) == (2, "")
    assert bad.stderr.startswith("error: give either --dsn or --snapshot")


def test_recommend_offers_no_metrics() -> None:
    """recommend plans, it measures nothing: --format openmetrics is a usage error, before any read."""
    result = invoke("recommend", "--ram", "16G", "-f", "openmetrics")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("error: --format openmetrics: recommend plans settings")


def test_fail_on_exits_as_in_every_format() -> None:
    code, text, _ = run("connections", FIXTURES / "incident-pg18.json", "--fail-on", "critical")
    assert code == 1  # and the JSON run's too (checked by run)
    assert values(parse(text), "pgdoctor_finding", severity="critical")


def test_union_merges_families_and_never_repeats_a_series() -> None:
    a = family("pgdoctor_lock_root_blockers").add(1, "app").add(2, "other")
    b = family("pgdoctor_lock_root_blockers").add(5, "app").add(3, "third")
    merged = union([a, family("pgdoctor_deadlock_groups", 0), b])
    assert [f.name for f in merged] == ["pgdoctor_lock_root_blockers", "pgdoctor_deadlock_groups"]
    assert merged[0].samples == {("app",): 1.0, ("other",): 2.0, ("third",): 3.0}
    with pytest.raises(ValueError, match="takes labels"):
        family("pgdoctor_sessions").add(1, "only one label")
    with pytest.raises(KeyError):
        family("pgdoctor_undeclared")
    assert Family("pgdoctor_up").add(float("nan"), "x").samples == {}  # NaN: no sample


def test_names_follow_the_conventions() -> None:
    for name, spec in METRICS.items():
        assert re.fullmatch(r"pgdoctor_[a-z0-9_]+", name), name
        assert not name.endswith(("_total", "_count", "_sum", "_bucket", "_ms")), name
        assert ("_seconds" in name) == name.endswith("_seconds") == (spec.unit == "seconds"), name


def readme_metrics() -> dict[str, tuple[set[str], set[str]]]:
    """The README's metrics table: name -> (labels, commands)."""
    text = (ROOT / "README.md").read_text()
    m = re.search(r"^### Metrics\n(.*?)(?=^##)", text, re.M | re.S)
    assert m, "README: no '### Metrics' section"
    out: dict[str, tuple[set[str], set[str]]] = {}
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`pgdoctor_"):
            labels = set(re.findall(r"`([a-z_]+)`", cells[1]))
            commands = (
                set(EVERY) if cells[2] == "every command" else set(re.findall(r"`([a-z -]+)`", cells[2]))
            )
            out[cells[0].strip("`")] = (labels, commands)
    return out


def test_readme_documents_every_metric_with_its_labels_and_commands() -> None:
    documented = readme_metrics()
    assert set(documented) == set(METRICS)
    for name, (labels, commands) in documented.items():
        assert labels == set(METRICS[name].labels), name
        assert commands == set(METRICS[name].commands), name


def test_rules_file_is_valid_and_its_unit_tests_pass() -> None:
    check = promtool("check", "rules", str(RULES))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 5 rules found" in check.stdout
    tests = ROOT / "tests" / "promtool"
    result = promtool("test", "rules", *sorted(p.name for p in tests.glob("*.yml")), cwd=tests)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_unit_tests_catch_a_wrong_rule(tmp_path: Path) -> None:
    """The series file tells each threshold apart: a rule at 0.9 instead of 0.8, 30 minutes instead of 5,
    `or` instead of `and`, fails it."""
    rules = RULES.read_text()
    tests = (ROOT / "tests" / "promtool" / "pgdoctor.rules.test.yml").read_text()
    for wrong in (
        rules.replace("> 0.8", "> 0.9"),
        rules.replace("> 300", "> 400"),
        rules.replace("for: 1m", "for: 0m"),
        rules.replace("> 100)", "> 120)"),
        rules.replace("> 0.6 *", "> 0.5 *"),
        rules.replace("and\n", "or\n"),
        rules.replace('{state="waiting"}', ""),
        rules.replace("pgdoctor_up == 0", "pgdoctor_up < 1 or pgdoctor_up == 1"),
    ):
        assert wrong != rules
        (tmp_path / "rules.yml").write_text(wrong)
        (tmp_path / "t.yml").write_text(
            tests.replace("../../contrib/prometheus/pgdoctor.rules.yml", "rules.yml")
        )
        result = promtool("test", "rules", "t.yml", cwd=tmp_path)
        assert result.returncode != 0, wrong


PROBE = """
import sys
from pgdoctor.cli import main
sys.argv = ["pgdoctor", "connections", "--snapshot", SNAPSHOT, "-f", FMT]
try:
    main()
except SystemExit:
    pass
print("PROMETHEUS=" + str("prometheus_client" in sys.modules), file=sys.stderr)
"""


@pytest.mark.parametrize(("fmt", "imported"), [("json", False), ("plain", False), ("openmetrics", True)])
def test_prometheus_client_is_imported_for_openmetrics_only(fmt: str, imported: bool) -> None:
    import subprocess
    import sys

    code = PROBE.replace("SNAPSHOT", repr(str(FIXTURES / "incident-pg18.json"))).replace("FMT", repr(fmt))
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
        check=False,
        timeout=120,
    )
    assert f"PROMETHEUS={imported}" in result.stderr, result.stderr
