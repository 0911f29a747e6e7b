"""Benchmark `--watch` (run by hand; figures go to benchmarks/README.md).

    .venv/bin/python benchmarks/watch.py [--sessions 1000] [--ticks 60] [--interval 0.5] [--version 18]

The server's time per tick of `connections --watch` and `locks --watch` against the bare query, at N
client sessions (7 applications; for locks, one root blocker with 20 sessions queued behind it), from
pg_stat_statements' total execution time of every statement pgdoctor sent during the watch (its marker,
`/* pgdoctor */`, is in each) divided by the ticks, so the one-time reads at the start (role, settings)
are counted too; and the mean of each statement. The bare queries run as many times on another
connection: `SELECT * FROM pg_stat_activity` (connections), and that plus `SELECT * FROM pg_locks`
(locks). Also pgdoctor's CPU per tick (user + system of the whole process over the watch, start-up
included). And the server time of one whole run of the command without --watch (its role and
settings reads too). Target: a tick costs the server no more than the command's own read, whose cost
against the bare query is benchmarks/connections.py's and benchmarks/locks.py's concern.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg import pq  # noqa: E402

from tests.pgcluster import Cluster  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
BARE_ACTIVITY = "SELECT * FROM pg_stat_activity"
BARE_LOCKS = "SELECT * FROM pg_locks"
MARKER = "/* pgdoctor */"


def watch(dsn: str, command: str, ticks: int, interval: float, bare: list[str]) -> tuple[float, float]:
    """Run `pgdoctor COMMAND --watch INTERVAL -f json` for `ticks` lines, then Ctrl-C: (wall, CPU) s.
    After each line the bare queries run once on another connection: both see the same load."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgdoctor", command, "--watch", str(interval), "-f", "json", "-d", dsn],
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert proc.stdout is not None
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(ticks):
            if not proc.stdout.readline():
                raise RuntimeError(f"pgdoctor {command} --watch ended early ({proc.wait()})")
            for sql in bare:
                conn.execute(sql.encode()).fetchall()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"pgdoctor {command} --watch: exit {proc.returncode}")
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def once(dsn: str, command: str, runs: int) -> None:
    """The command without --watch, `runs` times: the server time of one whole run, for comparison."""
    for _ in range(runs):
        subprocess.run(
            [sys.executable, "-m", "pgdoctor", command, "-f", "json", "-d", dsn],
            stdout=subprocess.DEVNULL,
            env=ENV,
            check=False,
        )


def statements(pg: Cluster) -> list[tuple[str, int, float, float, float]]:
    """(query, calls, mean ms, total ms, min ms) of every statement since the last reset."""
    rows = pg.sql(
        "SELECT query, calls, mean_exec_time, total_exec_time, min_exec_time FROM pg_stat_statements"
    )
    return [(str(q), int(c), float(m), float(t), float(n)) for q, c, m, t, n in rows]


def measure(pg: Cluster, command: str, ticks: int, interval: float, bare: list[str]) -> dict[str, Any]:
    pg.sql("SELECT pg_stat_statements_reset()")
    wall, cpu = watch(pg.dsn(), command, ticks, interval, bare)
    rows = statements(pg)
    ours = [r for r in rows if MARKER in r[0]]
    per_tick = sum(r[3] for r in ours) / ticks
    bare_ms = bare_min = 0.0
    for sql in bare:
        found = [r for r in rows if r[0] == sql and r[1] >= ticks]
        assert found, f"{sql!r} not in pg_stat_statements"
        bare_ms += found[0][2]
        bare_min += found[0][4]
    # the fastest tick: the minimum of each statement pgdoctor sends every tick (the machine's noise off)
    tick_min = sum(r[4] * round(r[1] / ticks) for r in ours if r[1] >= ticks)
    runs = max(ticks // 6, 3)
    pg.sql("SELECT pg_stat_statements_reset()")
    once(pg.dsn(), command, runs)
    per_run = sum(r[3] for r in statements(pg) if MARKER in r[0]) / runs
    return {
        "per_tick_ms": per_tick,
        "bare_ms": bare_ms,
        "bare_min_ms": bare_min,
        "tick_min_ms": tick_min,
        "per_run_ms": per_run,
        "runs": runs,
        "ours": ours,
        "wall": wall,
        "cpu": cpu,
    }


def open_sessions(pg: Cluster, n: int) -> list[Any]:
    conns = []
    for i in range(n):
        raw = pq.PGconn.connect(pg.dsn(application_name=f"app_{i % 7}").encode())
        if raw.status != pq.ConnStatus.OK:
            raise RuntimeError(raw.get_error_message())
        conns.append(raw)
    return conns


def lock_queue(pg: Cluster, waiters: int) -> list[Any]:
    """One session holding an exclusive lock in an open transaction, `waiters` queued behind it."""
    pg.sql("CREATE TABLE IF NOT EXISTS bench_watch (id int)")
    holder = pq.PGconn.connect(pg.dsn(application_name="holder").encode())
    for sql in (b"BEGIN", b"LOCK TABLE bench_watch"):
        holder.exec_(sql)
    queued = [holder]
    for _ in range(waiters):
        raw = pq.PGconn.connect(pg.dsn(application_name="queued").encode())
        raw.send_query(b"SELECT count(*) FROM bench_watch")
        raw.flush()
        queued.append(raw)
    return queued


def report(name: str, result: dict[str, Any], ticks: int, bare: list[str]) -> None:
    print(f"\n{name}: {ticks} ticks, {result['wall']:.1f} s wall, {result['cpu']:.2f} s CPU")
    for query, calls, mean, total, least in sorted(result["ours"], key=lambda r: -r[3]):
        short = " ".join(query.split())[:60]
        print(f"  {calls:5d} x {mean:8.3f} ms = {total:9.1f} ms (min {least:.3f})  {short}")
    ratio = result["per_tick_ms"] / result["bare_ms"]
    print(
        f"server time per tick {result['per_tick_ms']:.3f} ms (every pgdoctor statement, start-up "
        f"included) vs bare {' + '.join(bare)} {result['bare_ms']:.3f} ms: {ratio:.2f}x"
    )
    print(
        f"  fastest: tick {result['tick_min_ms']:.3f} ms vs bare {result['bare_min_ms']:.3f} ms: "
        f"{result['tick_min_ms'] / result['bare_min_ms']:.2f}x"
    )
    print(
        f"  vs one run of `pgdoctor {name.split(maxsplit=1)[0]}` "
        f"(without --watch; mean of {result['runs']}): "
        f"{result['per_run_ms']:.3f} ms: {result['per_tick_ms'] / result['per_run_ms']:.2f}x"
    )
    print(f"pgdoctor CPU per tick: {1000 * result['cpu'] / ticks:.1f} ms (start-up included)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=60)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--version", default="18")
    args = parser.parse_args()
    pg = Cluster(args.version, settings={"max_connections": args.sessions + 60}).start()
    conns: list[Any] = []
    try:
        conns = open_sessions(pg, args.sessions)
        print(f"PostgreSQL {args.version}, {args.sessions} client sessions, --watch {args.interval:g}")
        bare = [BARE_ACTIVITY]
        report(
            "connections --watch",
            measure(pg, "connections", args.ticks, args.interval, bare),
            args.ticks,
            bare,
        )
        conns += lock_queue(pg, 20)
        time.sleep(1)
        bare = [BARE_ACTIVITY, BARE_LOCKS]
        result = measure(pg, "locks", args.ticks, args.interval, bare)
        report("locks --watch", result, args.ticks, bare)
    finally:
        for raw in conns:
            raw.finish()
        pg.stop()


if __name__ == "__main__":
    main()
