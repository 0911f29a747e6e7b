"""Benchmark `pgdoctor connections --sample` (run by hand; figures go to benchmarks/README.md).

    .venv/bin/python benchmarks/sample.py [--sessions 1000] [--ticks 300] [--seconds 30] [--version 18]

1. The server's cost of one sampling tick against the bare pg_stat_activity query, at N client sessions:
   pg_stat_statements' mean execution time of each statement over the same number of reads (the tick is
   pgdoctor's prelude + the tick query, plus a tenth of the once-a-second pg_stat_database read with its
   prelude). Target: at most 1.1x `SELECT * FROM pg_stat_activity`.
2. pgdoctor's own CPU during a sample of SECONDS (user + system of the whole process, from the kernel's
   rusage), and of a 0.5 s sample (start-up: imports, connection) for contrast. Target: under 10 % of one
   core.
Some sessions change state all the time (a loop of short transactions over 20 of them), so ticks have
changes to hand on, as in a real incident.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg import pq  # noqa: E402

from tests.pgcluster import Cluster  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
BARE = "SELECT * FROM pg_stat_activity"


def churn(dsn: str, stop: threading.Event) -> None:
    """20 sessions running short transactions with think time: states that change every tick."""
    conns = [psycopg.connect(dsn, autocommit=True, application_name="churn") for _ in range(20)]
    try:
        while not stop.is_set():
            for c in conns:
                with c.transaction():
                    c.execute("SELECT 1")
            time.sleep(0.02)
    finally:
        for c in conns:
            c.close()


def server_cost(pg: Cluster, ticks: int) -> dict[str, float]:
    from pgdoctor.collect.sample import INTERVAL_S, XACTS_EVERY_S, Sampler
    from pgdoctor.db import connect

    pg.sql("SELECT pg_stat_statements_reset()")
    with connect(pg.dsn(), 5.0) as db, psycopg.connect(pg.dsn(), autocommit=True) as conn:
        sampler = Sampler(db)
        for _ in range(ticks):  # interleaved, so both see the same server and the same load
            sampler.tick(force_xacts=True)  # every tick reads the counters too: scaled below
            conn.execute(BARE).fetchall()
    rows = pg.sql(
        "SELECT query, calls, mean_exec_time FROM pg_stat_statements "
        "WHERE query LIKE '%pg_stat_activity%' OR query LIKE '%set_config%' "
        "OR query LIKE '%pg_stat_database%' ORDER BY calls DESC"
    )

    def mean(part: str) -> float:
        found = [r for r in rows if part in r[0] and int(r[1]) >= ticks]
        assert found, f"no statement with {part!r} in pg_stat_statements"
        return float(found[0][2])

    prelude = mean("set_config(")
    tick = mean("LEFT JOIN LATERAL")
    xacts = mean("FROM pg_stat_database")
    share = INTERVAL_S / XACTS_EVERY_S  # the counters are read once every XACTS_EVERY_S
    bare = mean(BARE)
    total = prelude + tick + share * (prelude + xacts)
    return {
        "prelude_ms": prelude,
        "tick_ms": tick,
        "xacts_ms": xacts,
        "tick_total_ms": total,
        "bare_ms": bare,
    }


def cpu_of(dsn: str, seconds: float) -> tuple[float, float]:
    """(wall, user + system CPU seconds) of one `pgdoctor connections --sample` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pgdoctor", "connections", "-d", dsn, "--sample", f"{seconds}s", "-f", "json"],
        check=False,
        stdout=subprocess.DEVNULL,
        env=ENV,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--version", default="18")
    args = parser.parse_args()
    pg = Cluster(args.version, settings={"max_connections": args.sessions + 40}).start()
    conns: list[Any] = []
    stop = threading.Event()
    try:
        for i in range(args.sessions - 20):
            raw = pq.PGconn.connect(pg.dsn(application_name=f"app_{i % 7}").encode())
            if raw.status != pq.ConnStatus.OK:
                raise RuntimeError(raw.get_error_message())
            conns.append(raw)
        worker = threading.Thread(target=churn, args=(pg.dsn(), stop), daemon=True)
        worker.start()
        time.sleep(1)
        cost = server_cost(pg, args.ticks)
        print(f"PostgreSQL {args.version}, {args.sessions} client sessions, {args.ticks} reads each")
        print(
            f"server, mean per read: prelude {cost['prelude_ms']:.3f} ms, "
            f"tick query {cost['tick_ms']:.3f} ms, "
            f"pg_stat_database {cost['xacts_ms']:.3f} ms (every 10th tick)"
        )
        print(
            f"one tick {cost['tick_total_ms']:.3f} ms vs bare `{BARE}` {cost['bare_ms']:.3f} ms: "
            f"{cost['tick_total_ms'] / cost['bare_ms']:.2f}x (target <= 1.1x)"
        )
        wall0, cpu0 = cpu_of(pg.dsn(), 0.5)
        wall, cpu = cpu_of(pg.dsn(), args.seconds)
        print(f"pgdoctor --sample 0.5s: {wall0:.2f} s wall, {cpu0:.2f} s CPU (start-up)")
        print(
            f"pgdoctor --sample {args.seconds:g}s: {wall:.2f} s wall, {cpu:.2f} s CPU = "
            f"{100 * cpu / wall:.1f}% of a core ({100 * (cpu - cpu0) / (wall - wall0):.1f}% while sampling, "
            "start-up taken off; target < 10%)"
        )
    finally:
        stop.set()
        for raw in conns:
            raw.finish()
        pg.stop()


if __name__ == "__main__":
    main()
