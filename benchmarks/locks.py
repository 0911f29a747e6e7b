"""How `pgdoctor locks` costs grow with the lock table; run by hand, bounded in time.

    .venv/bin/python benchmarks/locks.py [--versions 15 18] [--sizes 5000 50000 200000] [--waiters 50]

Starts its own throwaway cluster per version (max_locks_per_transaction raised so 200,000 entries fit),
then: one session holds advisory lock -1 in an open transaction, `--waiters` sessions queue for it,
and one session takes `pg_advisory_xact_lock(g)` for g up to each size in turn. For every size it
measures, on the server (EXPLAIN ANALYZE, median of --repeat runs, no per-node timing):

- bare        the reference: SELECT pid, pg_blocking_pids(pid) FROM pg_stat_activity
              WHERE wait_event_type = 'Lock'
- activity    pgdoctor's pg_stat_activity read, shared with connections and slow-queries (no pg_locks)
- waits       pgdoctor's locks_waits (run only when someone waits; one pass over pg_locks)
- summary     pgdoctor's locks_summary (only with --all; one pass over pg_locks)
- self-join   the widely copied pg_locks self-join on locktype/database/relation, for contrast
              (capped by --self-join-timeout)

and, as whole processes, `pgdoctor locks --format json` (default, --fast, --all): wall time, and the
server time of pgdoctor's own lock statements as pg_stat_statements recorded them (a fresh backend
each run, like pgdoctor; the bare query is timed the same way for comparison: `bare*`).
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


PARTS = {  # pgdoctor's lock statements, told apart by a fragment of their text
    "activity": "pg_blocking_pids",
    "waits": "array_agg(l)",
    "summary": "count(DISTINCT g.pid)",
}


def statement_ms(pg: Cluster) -> dict[str, float]:
    """Server ms per part, as pg_stat_statements recorded them since the last reset."""
    with pg.connect() as conn:
        rows = conn.execute("SELECT query, total_exec_time FROM pg_stat_statements").fetchall()
    out = dict.fromkeys(PARTS, 0.0)
    for query, ms in rows:
        for part, fragment in PARTS.items():
            if fragment in query and "pg_stat_statements" not in query:
                out[part] += float(ms)
    return out


def reset(pg: Cluster) -> None:
    with pg.connect() as conn:
        conn.execute("SELECT pg_stat_statements_reset()")


def bare_fresh(pg: Cluster) -> float:
    """The bare query in a new connection (as pgdoctor runs it), timed by pg_stat_statements."""
    reset(pg)
    with pg.connect() as conn:
        conn.execute(BARE).fetchall()
    return statement_ms(pg)["activity"]


def run_pgdoctor(pg: Cluster, *args: str) -> tuple[float, float, dict[str, float]]:
    """Wall seconds of one `pgdoctor locks` process; server ms of its lock statements in all and by
    part, as pg_stat_statements recorded them."""
    reset(pg)
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
    parts = statement_ms(pg)
    return wall, sum(parts.values()), parts


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
        sql = {name: queries.load(name, qv) for name in ("activity", "locks_waits", "locks_summary")}
        print(f"\nPostgreSQL {conn.execute('SHOW server_version').fetchone()[0]}: {waiters} waiters")  # type: ignore[index]
        head = (
            f"{'entries':>8} | {'bare':>6} {'activity':>8} {'waits':>7} {'summary':>7} {'self-join':>9} "
            f"{'sj rows':>8} | {'bare*':>6} {'activ*':>7} {'waits*':>7} {'total*':>7} {'wall s':>6} | "
            f"{'fast*':>6} {'wall s':>6} | {'all*':>6} {'wall s':>6}"
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
            activity = server_ms(conn, sql["activity"], repeat)
            waits = server_ms(conn, sql["locks_waits"], repeat)
            summary = server_ms(conn, sql["locks_summary"], max(repeat // 2, 1))
            conn.execute(f"SET statement_timeout = {int(self_join_timeout * 1000)}".encode())
            try:
                sj = f"{server_ms(conn, SELF_JOIN, 1):.0f}"
                sj_rows = str(rows_of(conn, SELF_JOIN))
            except psycopg.errors.QueryCanceled:
                sj, sj_rows = f">{self_join_timeout * 1000:.0f}", "?"
            conn.execute("RESET statement_timeout")
            fresh = statistics.median(bare_fresh(pg) for _ in range(5))
            runs = sorted((run_pgdoctor(pg) for _ in range(5)), key=lambda r: r[1])
            wall = statistics.median(r[0] for r in runs)
            _, total, parts = runs[len(runs) // 2]
            fast = [run_pgdoctor(pg, "--fast") for _ in range(5)]
            full = [run_pgdoctor(pg, "--all") for _ in range(3)]
            fast_ms, fast_s = statistics.median(f[1] for f in fast), statistics.median(f[0] for f in fast)
            all_ms, all_s = statistics.median(f[1] for f in full), statistics.median(f[0] for f in full)
            print(
                f"{entries:>8} | {bare:>6.2f} {activity:>8.2f} {waits:>7.1f} {summary:>7.1f} {sj:>9} "
                f"{sj_rows:>8} | {fresh:>6.2f} {parts['activity']:>7.2f} "
                f"{parts['waits']:>7.1f} {total:>7.1f} {wall:>6.2f} | "
                f"{fast_ms:>6.2f} {fast_s:>6.2f} | {all_ms:>6.1f} {all_s:>6.2f}",
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
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(
        "columns: EXPLAIN ANALYZE medians in ms (bare, activity, waits, summary, self-join); "
        "* = pg_stat_statements ms in a fresh connection, as pgdoctor runs (medians of 5 runs); "
        "wall s = whole pgdoctor process"
    )
    for version in args.versions:
        bench(version, args.sizes, args.waiters, args.repeat, args.self_join_timeout)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
