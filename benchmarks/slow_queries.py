"""Benchmark `pgdoctor slow-queries` (run by hand; figures go to benchmarks/RESULTS-slow-queries.md).

    .venv/bin/python benchmarks/slow_queries.py [--versions 15 18] [--entries 10000] [--runs 9]

On a throwaway cluster with pg_stat_statements.max = --entries, filled with that many distinct
statements (plus some, so it is full and evicting), measure:
1. End to end, as a whole process: `pgdoctor slow-queries -f json` (default sort, and --sort temp),
   `-f plain`, `pgdoctor snapshot` (every order), and `--interval 1s` minus the second it waits.
2. Server time of pgdoctor's statement (EXPLAIN ANALYZE execution time) against a bare
   `SELECT ... FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 10`.
Bounded: the fill runs in pipeline mode; every measurement is a fixed number of runs.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from pgdoctor.collect.statements_sql import Reader  # noqa: E402
from tests.pgcluster import Cluster  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
PGDOCTOR = [sys.executable, "-m", "pgdoctor"]
BARE = (
    "SELECT userid, dbid, queryid, query, calls, total_exec_time, mean_exec_time, rows, shared_blks_hit, "
    "shared_blks_read, temp_blks_written FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 10"
)


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - start


def median_of(cmd: list[str], runs: int) -> float:
    timed(cmd)  # warm the page cache
    return statistics.median(timed(cmd) for _ in range(runs))


def fill(pg: Cluster, count: int) -> None:
    """`count` distinct statements (distinct query trees: n target columns x k WHERE terms)."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn, conn.pipeline():
        made = 0
        for k in range(1, 1000):
            for n in range(1, 101):
                where = " AND ".join(["g > 0"] * k)
                cols = ", ".join(f"g + {i}" for i in range(n))
                conn.execute(f"SELECT {cols} FROM generate_series(1, 2) g WHERE {where}".encode())
                made += 1
                if made >= count:
                    return


def execution_ms(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any] | None) -> float:
    """EXPLAIN ANALYZE execution time of `sql`, in ms."""
    plan = conn.execute(f"EXPLAIN (ANALYZE, TIMING OFF) {sql}".encode(), params).fetchall()
    text = "\n".join(str(r[0]) for r in plan)
    m = re.search(r"Execution Time: ([\d.]+) ms", text)
    assert m, text
    return float(m.group(1))


def server_ms(
    conn: psycopg.Connection[Any], mine: str, params: dict[str, Any], bare: str, runs: int
) -> tuple[float, float]:
    """Median server time of pgdoctor's statement and of the bare one, runs interleaved (the machine
    is shared, so load changes hit both alike)."""
    ours, theirs = [], []
    for _ in range(runs):
        ours.append(execution_ms(conn, mine, params))
        theirs.append(execution_ms(conn, bare, None))
    return statistics.median(ours), statistics.median(theirs)


def bench(version: str, entries: int, runs: int) -> dict[str, Any]:
    pg = Cluster(version, settings={"pg_stat_statements.max": entries, "shared_buffers": "'128MB'"}).start()
    try:
        started = time.perf_counter()
        fill(pg, entries + entries // 20)
        fill_s = time.perf_counter() - started
        dsn = pg.dsn()
        with psycopg.connect(dsn, autocommit=True) as conn:
            held = conn.execute("SELECT count(*) FROM pg_stat_statements").fetchone()
            dealloc = conn.execute("SELECT dealloc FROM pg_stat_statements_info").fetchone()
            ext = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'")
            version_row = ext.fetchone()
            assert held and dealloc and version_row
            reader = Reader(str(version_row[0]), "public")
            top = reader.top_sql(interval=False)
            params = {"limit": 10, "database": None, "user": None, "sort": "total"}
            ours, bare = server_ms(conn, top, params, BARE, 2 * runs + 1)
            result: dict[str, Any] = {
                "version": version,
                "entries": held[0],
                "dealloc": dealloc[0],
                "fill_s": fill_s,
                "server_pgdoctor_ms": ours,
                "server_bare_ms": bare,
            }
        base = [*PGDOCTOR, "slow-queries", "-d", dsn]
        result["e2e_json_s"] = median_of([*base, "-f", "json"], runs)
        result["e2e_temp_s"] = median_of([*base, "-f", "json", "--sort", "temp"], runs)
        result["e2e_plain_s"] = median_of([*base, "-f", "plain"], runs)
        result["interval_overhead_s"] = median_of([*base, "-f", "json", "--interval", "1s"], 3) - 1.0
        with tempfile.TemporaryDirectory() as tmp:
            out = str(Path(tmp) / "snap.json")
            result["snapshot_s"] = median_of([*PGDOCTOR, "snapshot", "-d", dsn, "-o", out], 3)
            result["snapshot_mb"] = Path(out).stat().st_size / 1e6
            result["offline_s"] = median_of(
                [*PGDOCTOR, "slow-queries", "--snapshot", out, "-f", "json"], runs
            )
        return result
    finally:
        pg.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--versions", nargs="+", default=["15", "18"])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    help_s = median_of([*PGDOCTOR, "--help"], args.runs)
    print(f"pgdoctor --help: median {help_s * 1000:.0f} ms over {args.runs} runs")
    rows = [bench(v, args.entries, args.runs) for v in args.versions]
    print(f"pg_stat_statements.max = {args.entries}; medians of {args.runs} runs (interval/snapshot: 3)")
    header = (
        f"{'PG':>3} {'entries':>7} {'dealloc':>7} {'server ms: pgdoctor':>19} {'bare':>6} "
        f"{'e2e json s':>10} {'--sort temp':>11} {'plain':>6} {'interval+':>9} {'snapshot s':>10} "
        f"{'MB':>5} {'offline s':>9}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['version']:>3} {r['entries']:>7} {r['dealloc']:>7} {r['server_pgdoctor_ms']:>19.1f} "
            f"{r['server_bare_ms']:>6.1f} {r['e2e_json_s']:>10.3f} {r['e2e_temp_s']:>11.3f} "
            f"{r['e2e_plain_s']:>6.3f} {r['interval_overhead_s']:>9.3f} {r['snapshot_s']:>10.3f} "
            f"{r['snapshot_mb']:>5.2f} {r['offline_s']:>9.3f}"
        )


if __name__ == "__main__":
    main()
