"""`pgdoctor recommend` with no server: formats, errors, and no database libraries imported."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT, invoke

OFFLINE_PROBE = """
import sys
from pgdoctor.cli import main
sys.argv = ["pgdoctor", "recommend", "--ram", "128G", "--cpus", "32", "--app", "training=1000", "-f", FMT]
try:
    main()
except SystemExit as exc:
    code = exc.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"psycopg", "psycopg2", "sqlalchemy", "asyncpg"})
print("HEAVY=" + ",".join(heavy), "CODE=" + str(code), file=sys.stderr)
"""


def test_offline_never_imports_a_database_library() -> None:
    for fmt in ("plain", "json", "conf", "pgbouncer", "sqlalchemy", "django", "markdown", "csv", "table"):
        result = subprocess.run(
            [sys.executable, "-c", OFFLINE_PROBE.replace("FMT", repr(fmt))],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
            check=False,
        )
        assert "HEAVY= CODE=0" in result.stderr, (fmt, result.stderr)
        assert result.stdout.strip(), fmt


def test_ram_is_required_without_a_server() -> None:
    result = invoke("recommend", "--cpus", "8")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: --ram is required without a server (--dsn or --snapshot), e.g. --ram 128G"
    )


def test_bad_app_and_version_are_usage_errors() -> None:
    for args, needle in (
        (["--app", "training"], "NAME=PROCESSES"),
        (["--app", "training=0"], "at least 1"),
        (["--app", "a=1", "--app", "a=2"], "given twice"),
        (["--app", "=5"], "NAME=PROCESSES"),
        (["--pg-version", "12"], "supported versions"),
    ):
        result = invoke("recommend", "--ram", "8G", *args)
        assert result.exit_code == 2, (args, result.stderr)
        assert needle in result.stderr and result.stderr.startswith("error: "), result.stderr
    bad_choice = invoke("recommend", "--ram", "8G", "--storage", "floppy")
    assert bad_choice.exit_code == 2


def test_pgbouncer_format_without_pgbouncer_is_explained() -> None:
    result = invoke("recommend", "--ram", "8G", "--app", "web=4", "-f", "pgbouncer")
    assert result.exit_code == 2
    assert "no PgBouncer in this plan" in result.stderr and "--pgbouncer" in result.stderr
    forced = invoke("recommend", "--ram", "8G", "--app", "web=4", "--pgbouncer", "-f", "pgbouncer")
    assert forced.exit_code == 0
    assert "[pgbouncer]" in forced.stdout.splitlines()


def test_app_threads_syntax_and_observed_flag() -> None:
    result = invoke(
        "recommend", "--ram", "8G", "--cpus", "4", "--app", "web=16x8", "--app", "cron=2", "-f", "json"
    )
    doc = json.loads(result.stdout)
    apps = {a["name"]: a for a in doc["pools"]["apps"]}
    assert (apps["web"]["processes"], apps["web"]["threads"]) == (16, 8)
    assert apps["cron"]["threads"] == 1
    assert not apps["web"]["observed"]
    assert doc["inputs"]["apps_source"] == "given"


def test_conf_block_lines_are_settings_or_comments() -> None:
    result = invoke("recommend", "--ram", "64G", "--cpus", "16", "--workload", "oltp", "-f", "conf")
    assert result.exit_code == 0
    doc = json.loads(
        invoke("recommend", "--ram", "64G", "--cpus", "16", "--workload", "oltp", "-f", "json").stdout
    )
    written = {}
    for line in result.stdout.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, rest = line.partition(" = ")
        written[name] = rest.split("  #")[0]
    expected = {
        s["name"]: s["value"] for s in doc["settings"] if not s["per_role"] and s["value"] is not None
    }
    assert written == expected
    assert "statement_timeout" not in written  # per role: a comment with the ALTER ROLE line
    assert "#   ALTER ROLE <app_role> SET statement_timeout = '30s';" in result.stdout


def test_fail_on_applies_to_findings() -> None:
    ok = invoke("recommend", "--ram", "128G", "--cpus", "32", "--fail-on", "warning", "-f", "plain")
    assert ok.exit_code == 0, ok.stdout
    bad = invoke(
        "recommend", "--ram", "1G", "--max-connections", "500", "--fail-on", "critical", "-f", "plain"
    )
    assert bad.exit_code == 1
    assert "CRITICAL memory_overcommit [recommended]" in bad.stdout


def test_recommend_formats_are_the_report_formats_and_three_texts() -> None:
    """recommend's -f is every report format (handed to emit_report as a Format) plus its ready-to-paste
    texts; a format added to one enum and not the other fails here."""
    from pgdoctor.commands.recommend import RecommendFormat
    from pgdoctor.render.formats import Format

    values = [f.value for f in RecommendFormat]
    assert values == [f.value for f in Format] + ["conf", "pgbouncer", "sqlalchemy", "django"]
