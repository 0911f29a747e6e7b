"""The tool never harms the patient: one connection per run, every statement its own and marked."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli
from tests.incidents import Sessions
from tests.pgcluster import Cluster

pytestmark = pytest.mark.server

COMMANDS = [
    ["connections", "-f", "json"],
    ["connections", "--sample", "1s", "-f", "json"],
    ["snapshot", "--sample", "1s", "-o", "/dev/null"],
    ["locks", "-f", "json"],
    ["locks", "--all", "-f", "json"],
    ["slow-queries", "-f", "json"],
    ["recommend", "--ram", "4GB", "-f", "json"],
    ["triage", "-f", "json"],
]


def sessions_opened(pg: Cluster) -> int:
    """Sessions ever opened on the server (pg_stat_database.sessions, PostgreSQL 14+)."""
    return int(pg.sql("SELECT sum(sessions) FROM pg_stat_database")[0][0])


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_one_connection_and_every_statement_marked(pg: Cluster, sessions: Sessions, args: list[str]) -> None:
    sessions.idle("web", 2)
    sessions.idle_in_transaction("worker")
    pg.sql("SELECT pg_stat_statements_reset()")
    pg.sql("SELECT pg_stat_clear_snapshot()")
    before = sessions_opened(pg)
    result = run_cli(*args, "-d", pg.dsn())
    assert result.returncode in (0, 1), result.stderr
    # the superuser connection of pg.sql() counts one session too
    assert sessions_opened(pg) - before == 1 + 1
    unmarked = pg.sql(
        "SELECT query FROM pg_stat_statements WHERE strpos(query, '/* pgdoctor */') = 0 "
        "AND query NOT LIKE '%pg_stat_statements_reset%' AND query NOT LIKE '%pg_stat_clear_snapshot%' "
        "AND query NOT LIKE 'SELECT sum(sessions) FROM pg_stat_database'"
    )
    assert unmarked == []
