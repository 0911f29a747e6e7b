"""Benchmark `pgdoctor record` and `pgdoctor timeline` (run by hand; figures go to benchmarks/README.md).

    .venv/bin/python benchmarks/record.py [--sessions 1000] [--ticks 300] [--version 18]
    .venv/bin/python benchmarks/record.py --timeline-only [--long-ticks 1800] [--apps 20] [--runs 5]

1. The server's cost of one record tick against the bare pg_stat_activity query, at N client sessions:
   pg_stat_statements' mean execution time of each statement over the same number of reads (a tick is
   pgdoctor's prelude + the activity query `connections` runs, one round trip), interleaved.
2. `pgdoctor timeline` on a long recording (default 30 min at 1 s = 1,800 ticks, 20 applications,
   findings coming and going), whole processes: the table (`-f plain`, chart included), `-f json`,
   `--html`; median of RUNS.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "COLUMNS": "160"}
BARE = "SELECT * FROM pg_stat_activity"


def server_cost(version: str, sessions: int, ticks: int) -> dict[str, float]:
    import psycopg
    from psycopg import pq

    from pgdoctor.collect import record as collect
    from pgdoctor.db import connect
    from tests.pgcluster import Cluster

    pg = Cluster(version, settings={"max_connections": sessions + 20}).start()
    conns = []
    try:
        for i in range(sessions):
            raw = pq.PGconn.connect(pg.dsn(application_name=f"app_{i % 20}").encode())
            if raw.status != pq.ConnStatus.OK:
                raise RuntimeError(raw.get_error_message())
            conns.append(raw)
        pg.sql("SELECT pg_stat_statements_reset()")
        with connect(pg.dsn(), 5.0) as db, psycopg.connect(pg.dsn(), autocommit=True) as conn:
            info = collect.server(db)
            start = time.perf_counter()
            for _ in range(ticks):
                collect.read(db, info)
                conn.execute(BARE).fetchall()
            wall = time.perf_counter() - start
        rows = pg.sql(
            "SELECT query, calls, mean_exec_time FROM pg_stat_statements "
            "WHERE query LIKE '%pg_stat_activity%' OR query LIKE '%set_config%' ORDER BY calls DESC"
        )
    finally:
        for raw in conns:
            raw.finish()
        pg.stop()

    def mean(part: str) -> float:
        found = [r for r in rows if part in r[0] and int(r[1]) >= ticks]
        assert found, f"no statement with {part!r} in pg_stat_statements"
        return float(found[0][2])

    prelude, activity, bare = mean("set_config("), mean("pg_blocking_pids"), mean(BARE)
    return {"prelude_ms": prelude, "activity_ms": activity, "tick_ms": prelude + activity, "bare_ms": bare,
            "loop_wall_s": wall}  # fmt: skip


def long_recording(path: Path, ticks: int, apps: int) -> None:
    """A synthetic recording as `record` writes it: `apps` applications, one leaking for a while, an
    idle-in-transaction episode, lock waits, PgBouncer pools."""
    from pgdoctor.analyze.record import Header, PoolSample, ServerId, Tick
    from pgdoctor.snapshot.recording import VERSION, header_line, tick_line

    start = 1_765_000_000.0
    server = ServerId("18.1", 180001, "7400000000000000001", "db1:5432", "app", "monitor")
    header = Header(VERSION, "0.1.0", start, 1.0, server)
    with path.open("wb") as f:
        f.write(header_line(header))
        for k in range(ticks):
            leak = min(k // 4, 150) if k < ticks * 2 // 3 else 0
            counts = {f"service-{a:02d}": {"active": 1 + (k + a) % 3, "idle": 4 + a % 5} for a in range(apps)}
            counts["service-00"]["idle"] += leak
            findings = []
            if leak >= 10:
                findings.append(["warning", "idle_connections", "service-00"])
            xact = ticks // 3 <= k < ticks // 2
            if xact:
                counts["service-07"]["idle_in_transaction"] = 1
                findings.append(["critical", "idle_in_transaction", "service-07"])
            used = sum(sum(c.values()) for c in counts.values())
            if used >= 0.8 * 297:
                findings.append(["warning", "capacity", "server"])
            pools = [PoolSample("app", f"user{p}", 10, (k // 60) % 4, 10, 0, 0.5 * ((k // 60) % 4))
                     for p in range(3)]  # fmt: skip
            f.write(tick_line(Tick(t=start + k, used=used, usable=297, max_connections=300, apps=counts,
                                   background=6, blocked=2 if xact else 0, blockers=1 if xact else 0,
                                   oldest_idle_in_transaction_s=float(k - ticks // 3) if xact else None,
                                   oldest_xact_s=3.0, findings=findings, pools=pools)))  # fmt: skip


def timed(args: list[str], runs: int) -> tuple[float, float]:
    """Median wall time and median CPU time (user + system, from the kernel's rusage: less moved by
    other jobs on a busy machine) of whole `pgdoctor` processes."""
    import resource

    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "pgdoctor", *args], env=ENV, capture_output=True,
                                check=False)  # fmt: skip
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if result.returncode != 0:
            raise RuntimeError(result.stderr.decode())
    return statistics.median(walls), statistics.median(cpus)


def timeline(ticks: int, apps: int, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.jsonl"
        long_recording(path, ticks, apps)
        out: dict[str, Any] = {"ticks": ticks, "apps": apps, "bytes": path.stat().st_size}
        html = str(Path(tmp) / "t.html")
        out["--help"] = timed(["--help"], runs)  # for scale: the interpreter and the command line alone
        out["plain"] = timed(["timeline", str(path), "-f", "plain"], runs)
        out["plain --no-chart"] = timed(["timeline", str(path), "-f", "plain", "--no-chart"], runs)
        out["json"] = timed(["timeline", str(path), "-f", "json"], runs)
        out["--html"] = timed(["timeline", str(path), "-f", "json", "--html", html], runs)
        out["html_bytes"] = (Path(tmp) / "t.html").stat().st_size
        return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=300)
    parser.add_argument("--version", default="18")
    parser.add_argument("--long-ticks", type=int, default=1800)
    parser.add_argument("--apps", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--timeline-only", action="store_true")
    args = parser.parse_args()
    if not args.timeline_only:
        cost = server_cost(args.version, args.sessions, args.ticks)
        print(f"PostgreSQL {args.version}, {args.sessions} client sessions, {args.ticks} reads each")
        print(
            f"one record tick {cost['tick_ms']:.3f} ms (prelude {cost['prelude_ms']:.3f} + activity query "
            f"{cost['activity_ms']:.3f}) vs bare `{BARE}` {cost['bare_ms']:.3f} ms: "
            f"{cost['tick_ms'] / cost['bare_ms']:.2f}x"
        )
    t = timeline(args.long_ticks, args.apps, args.runs)
    print(
        f"timeline, {t['ticks']} ticks x {t['apps']} apps ({t['bytes'] / 1e6:.1f} MB; HTML "
        f"{t['html_bytes'] / 1e6:.1f} MB), whole processes, median of {args.runs}: wall / CPU"
    )
    for name in ("--help", "plain", "plain --no-chart", "json", "--html"):
        wall, cpu = t[name]
        print(f"  {name:18} {wall:6.2f} s / {cpu:5.2f} s")


if __name__ == "__main__":
    main()
