"""How `pgdoctor locks` costs grow with the lock table; run by hand, bounded in time.

    .venv/bin/python benchmarks/locks.py [--versions 15 18] [--sizes 5000 50000 200000] [--waiters 50]

Starts its own throwaway cluster per version (max_locks_per_transaction raised so 200,000 entries fit),
then: one session holds advisory lock -1 in an open transaction, `--waiters` sessions queue for it,
and one session takes `pg_advisory_xact_lock(g)` for g up to each size in turn. For every size it
measures, on the server (EXPLAIN ANALYZE, median of --repeat runs, no per-node timing):

- bare        the reference: SELECT pid, pg_blocking_pids(pid) FROM pg_stat_activity
              WHERE wait_event_type = 'Lock'
- activity    pgdoctor's locks_activity (always run; never reads pg_locks)
- waits       pgdoctor's locks_waits (run only when someone waits; one pass over pg_locks)
- summary     pgdoctor's locks_summary (only with --all; one pass over pg_locks)
- self-join   the widely copied pg_locks self-join on locktype/database/relation, for contrast
              (capped by --self-join-timeout)

and, as whole processes, `pgdoctor locks --format json` (default, --fast, --all): wall time, and the
server time of pgdoctor's own statements as pg_stat_statements recorded them.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from pgdoctor import queries  # noqa: E402
from tests.incidents import Sessions, wait_for_lock_waits  # noqa: E402
from tests.pgcluster import Cluster  # noqa: E402

BARE = "SELECT pid, pg_blocking_pids(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
SELF_JOIN = """
SELECT blocked.pid AS blocked_pid, blocking.pid AS blocking_pid
FROM pg_locks AS blocked
JOIN pg_locks AS blocking
  ON blocking.locktype = blocked.locktype
 AND blocking.database IS NOT DISTINCT FROM blocked.database
 AND blocking.relation IS NOT DISTINCT FROM blocked.relation
 AND blocking.pid <> blocked.pid
WHERE NOT blocked.granted AND blocking.granted
"""


def server_ms(conn: psycopg.Connection[Any], sql: str, repeat: int) -> float:
    """Median execution time the server reports for `sql` (EXPLAIN ANALYZE, TIMING OFF)."""
    times = []
    for _ in range(repeat):
        plan = conn.execute(f"EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON) {sql}".encode()).fetchall()
        line = next(r[0] for r in plan if r[0].startswith("Execution Time"))
        match = re.search(r"([\d.]+) ms", line)
        assert match is not None
        times.append(float(match.group(1)))
    return statistics.median(times)


def rows_of(conn: psycopg.Connection[Any], sql: str) -> int:
    return len(conn.execute(sql.encode()).fetchall())


def run_pgdoctor(pg: Cluster, *args: str) -> tuple[float, float, int]:
    """Wall seconds of one `pgdoctor locks` process, and the server ms and statement count that
    pg_stat_statements recorded for pgdoctor's own lock queries in that run."""
    with pg.connect() as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pgdoctor", "locks", "-d", pg.dsn(), "--format", "json", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - start
    if result.returncode not in (0, 1):
        raise RuntimeError(result.stderr)
    with pg.connect() as conn:
        row = conn.execute(
            "SELECT coalesce(sum(total_exec_time), 0), coalesce(sum(calls), 0)::int FROM pg_stat_statements "
            "WHERE query LIKE '%pg_blocking_pids%' OR query LIKE '%FROM pg_locks%'"
        ).fetchone()
    assert row is not None
    return wall, float(row[0]), int(row[1])


def bench(version: str, sizes: list[int], waiters: int, repeat: int, self_join_timeout: float) -> None:
    pg = Cluster(version, settings={"max_locks_per_transaction": 2500, "max_connections": 100}).start()
    sessions = Sessions(pg)
    qv = None
    try:
        holder = sessions.open("holder")
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(-1)")
        pids = [sessions.send("waiter", "SELECT pg_advisory_xact_lock(-1)") for _ in range(waiters)]
        wait_for_lock_waits(pg, pids, timeout=60)
        bulk = sessions.open("bulk")
        bulk.execute("BEGIN")
        conn = pg.connect()
        qv = queries.server_version(conn.info.server_version)
        sql = {name: queries.load(name, qv) for name in ("locks_activity", "locks_waits", "locks_summary")}
        print(f"\nPostgreSQL {conn.execute('SHOW server_version').fetchone()[0]}: {waiters} waiters")  # type: ignore[index]
        head = (
            f"{'entries':>8} {'bare ms':>8} {'activity':>9} {'waits':>8} {'summary':>8} {'self-join':>10} "
            f"{'sj rows':>9} | {'e2e s':>6} {'srv ms':>7} {'stmts':>5} | {'--fast s':>8} {'srv ms':>7} | "
            f"{'--all s':>7} {'srv ms':>7}"
        )
        print(head)
        have = 0
        for size in sizes:
            bulk.execute(
                "SELECT count(pg_advisory_xact_lock(g)) FROM generate_series(%s::bigint, %s::bigint) g",
                [have + 1, size],
            )
            have = size
            entries = conn.execute("SELECT count(*) FROM pg_locks").fetchone()[0]  # type: ignore[index]
            bare = server_ms(conn, BARE, repeat)
            activity = server_ms(conn, sql["locks_activity"], repeat)
            waits = server_ms(conn, sql["locks_waits"], repeat)
            summary = server_ms(conn, sql["locks_summary"], max(repeat // 2, 1))
            conn.execute(f"SET statement_timeout = {int(self_join_timeout * 1000)}".encode())
            try:
                sj = f"{server_ms(conn, SELF_JOIN, 1):.0f}"
                sj_rows = str(rows_of(conn, SELF_JOIN))
            except psycopg.errors.QueryCanceled:
                sj, sj_rows = f">{self_join_timeout * 1000:.0f}", "?"
            conn.execute("RESET statement_timeout")
            runs = [run_pgdoctor(pg) for _ in range(3)]
            wall, srv, stmts = min(runs)
            fast = min(run_pgdoctor(pg, "--fast") for _ in range(3))
            full = min(run_pgdoctor(pg, "--all") for _ in range(2))
            print(
                f"{entries:>8} {bare:>8.2f} {activity:>9.2f} {waits:>8.1f} {summary:>8.1f} {sj:>10} "
                f"{sj_rows:>9} | {wall:>6.2f} {srv:>7.1f} {stmts:>5} | {fast[0]:>8.2f} {fast[1]:>7.2f} | "
                f"{full[0]:>7.2f} {full[1]:>7.1f}",
                flush=True,
            )
        conn.close()
    finally:
        sessions.close()
        pg.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--versions", nargs="+", default=["15", "18"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[5000, 50000, 200000])
    parser.add_argument("--waiters", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--self-join-timeout", type=float, default=20.0)
    args = parser.parse_args()
    for version in args.versions:
        bench(version, args.sizes, args.waiters, args.repeat, args.self_join_timeout)


if __name__ == "__main__":
    main()
