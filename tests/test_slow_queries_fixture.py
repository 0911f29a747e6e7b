"""slow-queries on snapshots recorded from real servers (fixtures/statements-*.json), without a server.

Every column set of pg_stat_statements is there: 1.4 (total_time; a PostgreSQL 15 whose extension was
never updated), 1.8 and 1.9 (PostgreSQL 14), 1.10 (15), 1.11 (17), 1.12 (18); and a PostgreSQL 18
started without shared_preload_libraries. See scripts/record_statements_fixtures.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgdoctor.analyze.choices import Sort
from pgdoctor.analyze.slow_queries import PlanNotTracked, SlowQueriesReport, analyze
from pgdoctor.collect.statements import ORDER, SORTS, StatementsData
from pgdoctor.commands.slow_queries import parse_interval
from pgdoctor.errors import PgDoctorError
from pgdoctor.exitcodes import exit_code
from pgdoctor.queries import parse_version
from pgdoctor.snapshot import load_dataset
from tests.conftest import FIXTURES, invoke
from tests.incidents import LOOKUP_SQL, SCAN_SQL, SORT_SQL, UPDATE_SQL

SHAPES = ["pg14-1.8", "pg14-1.9", "pg15-1.4", "pg15-1.10", "pg17-1.11", "pg18-1.12"]
NOT_PRELOADED = FIXTURES / "statements-pg18-not-preloaded.json"


def fixture(shape: str) -> Path:
    return FIXTURES / f"statements-{shape}.json"


def load(path: Path) -> StatementsData:
    return load_dataset(path, "statements", StatementsData)


def normalised(sql: str) -> str:
    """The text pg_stat_statements files a psycopg statement under: %s becomes $1."""
    return sql.replace("%s", "$1")


def by_text(report: SlowQueriesReport, sql: str) -> dict[str, object]:
    matches = [s for s in report.statements if (s.query or "").startswith(normalised(sql).split(" = ")[0])]
    assert len(matches) == 1, [s.query for s in report.statements]
    return vars(matches[0])


def test_every_shape_is_recorded() -> None:
    names = sorted(p.name for p in FIXTURES.glob("statements-*.json"))
    assert names == sorted([f"statements-{s}.json" for s in SHAPES] + [NOT_PRELOADED.name])


@pytest.mark.parametrize("shape", SHAPES)
def test_the_workload_as_each_version_reports_it(shape: str) -> None:
    data = load(fixture(shape))
    ext_version = shape.split("-")[1]
    assert data.extension.status == "ok"
    assert data.extension.version == ext_version
    assert data.server.major == int(shape[2:4])
    report = analyze(data, limit=20)

    lookup = by_text(report, LOOKUP_SQL)
    assert report.statements[0].query == normalised(LOOKUP_SQL)  # the unindexed lookup eats the time
    assert (lookup["calls"], lookup["rows_per_call"], lookup["user"], lookup["database"]) == (
        1000,
        4.0,
        "shop_app",
        "shop",
    )
    update = by_text(report, UPDATE_SQL)
    assert (update["calls"], update["rows"], update["database"]) == (1000, 1000, "shop")
    sort = by_text(report, SORT_SQL)
    assert sort["user"] == "report_app" and sort["database"] == "analytics"
    assert int(str(sort["temp_blks_written"])) > 0
    scan = by_text(report, SCAN_SQL)
    assert float(str(scan["hit_ratio"])) < 0.9  # read through its ring buffer

    totals = report.totals
    assert totals is not None
    top = report.statements[0]
    assert top.pct_total == round(100 * top.total_ms / totals.all_exec_ms, 2)
    assert sum(s.pct_total or 0 for s in report.statements) <= 100.1  # each rounded to 0.01
    if parse_version(ext_version) < (1, 8):
        assert top.plans is None  # 1.4 has no planning counters
    codes = {(f.code, f.subject) for f in report.findings}
    assert ("dominant_statement", f"queryid {lookup['queryid']}") in codes
    assert ("temp_spill", f"queryid {sort['queryid']}") in codes
    assert ("low_hit_ratio", f"queryid {scan['queryid']}") in codes
    assert report.findings[0].code == "dominant_statement" and report.findings[0].severity.value == "critical"
    # pg_stat_statements_info exists from 1.9: deallocations and the reset time
    if parse_version(ext_version) >= (1, 9):
        assert report.dealloc == 0
        assert ("stats_reset", "pg_stat_statements") in codes
    else:
        assert report.dealloc is None and report.stats_reset is None
    if ext_version == "1.4":
        assert ("extension_outdated", "pg_stat_statements") in codes
    # the running report is listed, the test's own settle time behind it
    assert [r.application_name for r in report.running] == ["nightly_report"]
    assert exit_code(report.findings, "never", report.unusable) == 0


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("sort", [s for s in SORTS if s != "plan"])
def test_each_order_is_sorted_by_its_column(shape: str, sort: str) -> None:
    data = load(fixture(shape))
    report = analyze(data, sort=sort, limit=50)
    column = {"total": "total_ms", "mean": "mean_ms", "io": "io_blks"}.get(sort, ORDER[sort])
    values = [getattr(s, column) for s in report.statements]
    assert values, sort
    assert values == sorted(values, reverse=True)
    assert len(report.statements) == len(data.tops[sort].statements)


def test_plan_sort_needs_track_planning() -> None:
    data = load(fixture("pg18-1.12"))
    with pytest.raises(PlanNotTracked, match="track_planning"):
        analyze(data, sort="plan")


def test_offline_filters_and_limit_say_what_they_cannot_see() -> None:
    data = load(fixture("pg15-1.10"))
    report = analyze(data, database="analytics", limit=80)
    assert report.statements and {s.database for s in report.statements} == {"analytics"}
    assert any("filtered from the top 50" in n for n in report.notes)
    report = analyze(data, user="shop_app")
    assert {s.user for s in report.statements} == {"shop_app"}


def test_not_preloaded_offline_says_what_to_change() -> None:
    report = analyze(load(NOT_PRELOADED))
    assert report.extension.status == "not_preloaded"
    assert report.statements == [] and report.totals is None
    first = report.findings[0]
    assert first.code == "extension_not_preloaded" and first.severity.value == "critical"
    assert "shared_preload_libraries" in first.advice and "restart" in first.advice
    assert "CREATE EXTENSION pg_stat_statements" in first.advice
    assert [r.application_name for r in report.running] == ["nightly_report"]
    assert exit_code(report.findings, "never", report.unusable) == 6


def test_cli_on_snapshots_all_formats() -> None:
    path = fixture("pg17-1.11")
    for fmt in ("table", "plain", "markdown"):
        result = invoke("slow-queries", "--snapshot", str(path), "--format", fmt)
        assert result.exit_code == 0, result.stderr
        assert normalised(LOOKUP_SQL) in result.stdout
        assert "pg_stat_statements 1.11" in result.stdout
        assert "nightly_report" in result.stdout
    csv_lines = invoke("slow-queries", "--snapshot", str(path), "--format", "csv").stdout.splitlines()
    assert csv_lines[0].startswith("#,queryid,user,database,calls,total ms,mean ms")
    assert csv_lines[1].split(",")[2:5] == ["shop_app", "shop", "1000"]
    assert len(csv_lines) == 11


def test_json_contract() -> None:
    result = invoke("slow-queries", "--snapshot", str(fixture("pg18-1.12")), "-f", "json", "--sort", "temp")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["source"] == "pg_stat_statements"
    assert (doc["extension_version"], doc["sort"], doc["status"], doc["available"]) == (
        "1.12",
        "temp",
        "ok",
        True,
    )
    needed = {"queryid", "query", "calls", "total_ms", "mean_ms", "rows", "pct_total", "hit_ratio"}
    needed |= {"temp_blks_written", "user", "database"}
    assert needed <= doc["statements"][0].keys()
    assert doc["statements"][0]["query"] == SORT_SQL
    assert {"pid", "application_name", "duration_s", "query"} <= doc["running"][0].keys()
    assert {"severity", "code", "subject", "message", "advice", "pids"} <= doc["findings"][0].keys()
    assert doc["totals"]["max"] == 5000 and doc["totals"]["dealloc"] == 0


def test_cli_not_preloaded_snapshot_exits_6_after_showing_what_it_can() -> None:
    result = invoke("slow-queries", "--snapshot", str(NOT_PRELOADED), "-f", "json")
    assert result.exit_code == 6
    doc = json.loads(result.stdout)
    assert (doc["status"], doc["available"], doc["statements"]) == ("not_preloaded", False, [])
    assert doc["running"][0]["application_name"] == "nightly_report"
    assert doc["findings"][0]["code"] == "extension_not_preloaded"
    plain = invoke("slow-queries", "--snapshot", str(NOT_PRELOADED), "-f", "csv")
    assert plain.exit_code == 6
    # the running statements, grouped by application and normalised query (the CSV of the grouped table)
    assert plain.stdout.splitlines()[0].startswith("sessions,application,user,database,longest")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("2m", 120.0), ("500ms", 0.5), ("45", 45.0), ("1.5", 1.5), (" 3 s ", 3.0), ("1h", 3600)],
)
def test_parse_interval(text: str, seconds: float) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "-5s", "0", "5x", "2h", "1.2.3s", "s"])
def test_bad_interval_is_a_usage_error(text: str) -> None:
    with pytest.raises(PgDoctorError) as info:
        parse_interval(text)
    assert info.value.exit_code == 2


def test_bad_options_on_the_command_line() -> None:
    snap = str(fixture("pg15-1.10"))
    for args, message in [
        (("--interval", "soon", "-d", "host=/nonexistent"), "invalid --interval"),
        (("--interval", "5s", "--snapshot", snap), "cannot be used with --snapshot"),
    ]:
        result = invoke("slow-queries", *args)
        assert result.exit_code == 2, result.stderr
        assert result.stderr.startswith("error: ") and message in result.stderr
        assert result.stderr.count("\n") == 1
    result = invoke("slow-queries", "--snapshot", snap, "--sort", "plan")
    assert result.exit_code == 6 and "track_planning" in result.stderr
    result = invoke("slow-queries", "--snapshot", snap, "--sort", "bogus")
    assert result.exit_code == 2


def test_the_sort_choice_is_the_orders_collect_knows() -> None:
    """--sort's enum (pgdoctor.analyze.choices.Sort) and the columns collect sorts by name the same orders."""
    assert [s.value for s in Sort] == list(ORDER)


def test_the_hit_ratio_highlight_follows_hit_ratio_min() -> None:
    """--hit-ratio-min moves the table's highlighting with the finding (the threshold is the report's)."""
    from pgdoctor.render import slow_queries as render
    from pgdoctor.render.document import Styled

    data = load(fixture("pg15-1.10"))

    def highlighted(pct: float) -> tuple[int, int]:
        report = analyze(data, limit=50, hit_ratio_min_pct=pct)
        table = render.statements_table(report, full=False)
        hit_col = [c.header for c in table.columns].index("hit %")
        cells = sum(isinstance(row[hit_col], Styled) for row in table.rows)
        findings = sum(f.code == "low_hit_ratio" and f.subject != "server" for f in report.findings)
        return cells, findings

    assert highlighted(0.0) == (0, 0)
    everything = highlighted(100.0)
    assert everything[0] > 0 and everything[0] == everything[1]
