"""Session-wide throwaway clusters: every behaviour test runs on PostgreSQL 15 and 18."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import Result

from tests.incidents import Sessions
from tests.pgcluster import VERSIONS, Cluster

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


@pytest.fixture(scope="session", params=VERSIONS, ids=[f"pg{v}" for v in VERSIONS])
def pg(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A running cluster with pg_stat_statements preloaded, one per PostgreSQL version."""
    cluster = Cluster(request.param).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def sessions(pg: Cluster) -> Iterator[Sessions]:
    """Client sessions for one test; all ended afterwards so tests do not see each other's."""
    s = Sessions(pg)
    try:
        yield s
    finally:
        s.close()


# The user's config file (~/.config/pgdoctor/config.toml) stays out of the tests too: a test that wants
# one passes XDG_CONFIG_HOME, --config or a ./pgdoctor.toml of its own.
NO_CONFIG = {"XDG_CONFIG_HOME": str(ROOT / "tests" / "no-user-config")}


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run pgdoctor as a user would: a separate process, from this source tree."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "COLUMNS": "200", **NO_CONFIG}
    full_env.pop("DATABASE_URL", None)
    for name in [n for n in full_env if n.startswith("PGDOCTOR_")]:
        del full_env[name]  # a developer's own settings (PGDOCTOR_FORMAT=json …) stay out of the tests
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pgdoctor", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )


def invoke(*args: str, env: dict[str, str | None] | None = None) -> Result:
    """Run pgdoctor in this process, as the console script does (`pgdoctor.cli.main`: every numeric option
    checked, errors as one line and their exit code), with stdout and stderr captured by typer's
    CliRunner: a fraction of a second where `run_cli` starts an interpreter. For the wiring (options reach
    the analysis, formats, --fail-on, usage errors); `run_cli` stays for what only a real process shows."""
    from typer.testing import CliRunner

    from pgdoctor.cli import main

    runner = CliRunner()
    overrides: dict[str, str | None] = {"DATABASE_URL": None, "NO_COLOR": "1", "COLUMNS": "200", **NO_CONFIG}
    overrides |= {name: None for name in os.environ if name.startswith("PGDOCTOR_")}
    with runner.isolation(env={**overrides, **(env or {})}) as (out, err, mixed):
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        return Result(runner, out.getvalue(), err.getvalue(), mixed.getvalue(), None, code, None)
