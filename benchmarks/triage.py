"""Benchmark `pgdoctor triage` (run by hand; figures go to benchmarks/README.md).

    .venv/bin/python benchmarks/triage.py [--sessions 200] [--runs 15] [--version 15] [--statements 500]

End to end, as whole processes, interleaved (so drift on a shared machine hits every side alike), against
one local server in an incident: N idle client sessions, one idle-in-transaction session holding a row
lock with three updaters waiting behind it, and pg_stat_statements holding `--statements` distinct
statements; PgBouncer (Debian's) in front of it when installed.

- `pgdoctor triage -f json` (and with `--pgbouncer-dsn`)
- `pgdoctor connections -f json` alone: the target is within 1.3x of it
- the four commands run one after another: connections, locks, slow-queries (and pgbouncer)
- check_postgres's four equivalent checks, when installed (Debian package `check-postgres`, by hand):
  backends, locks, txn_idle, query_time: the target is under half of their time together
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from psycopg import pq  # noqa: E402

from tests.pgbouncer import available as pgbouncer_available  # noqa: E402
from tests.pgbouncer import running_pgbouncer  # noqa: E402
from tests.pgcluster import SUPERUSER, Cluster  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
PGDOCTOR = [sys.executable, "-m", "pgdoctor"]
CHECK_POSTGRES = shutil.which("check_postgres") or shutil.which("check_postgres.pl")


def run(cmd: list[str]) -> None:
    # pgdoctor exits 0 or 1 (findings); check_postgres 0-3 (Nagios: OK, WARNING, CRITICAL, UNKNOWN)
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, check=False)
    if done.returncode > 3:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.decode()[-500:]}")


def timed(cmds: list[list[str]]) -> float:
    """Wall seconds of these processes run one after another."""
    start = time.perf_counter()
    for cmd in cmds:
        run(cmd)
    return time.perf_counter() - start


def connect_raw(pg: Cluster, app: str) -> Any:
    raw = pq.PGconn.connect(pg.dsn(application_name=app).encode())
    if raw.status != pq.ConnStatus.OK:
        raise RuntimeError(raw.get_error_message())
    return raw


def execute(raw: Any, sql: str) -> None:
    raw.send_query(sql.encode())
    while raw.get_result() is not None:
        pass


def incident(pg: Cluster, sessions: int, statements: int) -> list[Any]:
    """The incident's sessions (kept open by the caller) and the statements pg_stat_statements holds."""
    pg.sql("DROP TABLE IF EXISTS bench_jobs")
    pg.sql("CREATE TABLE bench_jobs (id int PRIMARY KEY, status text)")
    pg.sql("INSERT INTO bench_jobs VALUES (1, 'queued')")
    pg.sql("SELECT pg_stat_statements_reset()")
    with pg.connect() as conn:
        for i in range(statements):  # distinct statements: one pg_stat_statements entry each
            conn.execute(f"SELECT {i} AS n{i}".encode())
    conns = []
    for i in range(sessions):
        raw = connect_raw(pg, f"app_{i % 7}")
        execute(raw, "SELECT 1")
        conns.append(raw)
    holder = connect_raw(pg, "training_manager")
    execute(holder, "BEGIN")
    execute(holder, "UPDATE bench_jobs SET status = 'training' WHERE id = 1")
    conns.append(holder)
    for _ in range(3):
        waiter = connect_raw(pg, "job_api")
        waiter.send_query(b"UPDATE bench_jobs SET status = 'cancelled' WHERE id = 1")
        waiter.flush()
        conns.append(waiter)
    deadline = time.monotonic() + 60
    while pg.sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")[0][0] < 3:
        if time.monotonic() > deadline:
            raise RuntimeError("the updaters never waited")
        time.sleep(0.1)
    return conns


def check_postgres(pg: Cluster) -> list[list[str]]:
    """check_postgres's four checks nearest to triage (each its own psql process)."""
    assert CHECK_POSTGRES
    base = [
        CHECK_POSTGRES,
        f"--host={pg.socket_dir}",
        f"--port={pg.port}",
        f"--dbuser={SUPERUSER}",
        "--db=postgres",
    ]
    return [
        [*base, "--action=backends"],
        [*base, "--action=locks", "--warning=100", "--critical=200"],
        [*base, "--action=txn_idle", "--warning=60s", "--critical=600s"],
        [*base, "--action=query_time", "--warning=60s", "--critical=600s"],
    ]


def measure(sides: dict[str, list[list[str]]], runs: int) -> dict[str, float]:
    for cmds in sides.values():
        timed(cmds)  # warm the page cache; fails early on a broken command
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(runs):
        for name, cmds in sides.items():
            times[name].append(timed(cmds))
    return {name: statistics.median(t) for name, t in times.items()}


def report(medians: dict[str, float], runs: int, title: str) -> None:
    print(f"\n{title} (median of {runs}, whole processes)")
    base = medians["connections"]
    for name, seconds in medians.items():
        print(f"  {name:<48} {seconds * 1000:7.0f} ms  {seconds / base:5.2f}x connections")
    if "check_postgres x4" in medians:
        share = medians["triage"] / medians["check_postgres x4"]
        print(f"  triage / check_postgres x4: {share:.2f} (target under 0.5)")
    print(f"  triage / connections: {medians['triage'] / base:.2f} (target within 1.3)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--statements", type=int, default=500)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--version", default="15")
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "pgdoctor")], check=True)
    settings = {"max_connections": args.sessions + 30, "shared_buffers": "'128MB'"}
    pg = Cluster(args.version, settings=settings).start()
    with ExitStack() as stack:
        stack.callback(pg.stop)
        conns = incident(pg, args.sessions, args.statements)
        stack.callback(lambda: [c.finish() for c in conns])
        dsn = pg.dsn()

        def cmd(*words: str) -> list[str]:
            return [*PGDOCTOR, *words, "-f", "json"]

        sides: dict[str, list[list[str]]] = {
            "triage": [cmd("triage", "-d", dsn)],
            "connections": [cmd("connections", "-d", dsn)],
            "connections + locks + slow-queries (3 processes)": [
                cmd("connections", "-d", dsn),
                cmd("locks", "-d", dsn),
                cmd("slow-queries", "-d", dsn),
            ],
        }
        if CHECK_POSTGRES:
            sides["check_postgres x4"] = check_postgres(pg)
        else:
            print("check_postgres not installed (apt-get install check-postgres): not compared")
        print(
            f"PostgreSQL {args.version}: {args.sessions} idle sessions, 1 root blocker with 3 waiters, "
            f"{args.statements} statements in pg_stat_statements"
        )
        report(measure(sides, args.runs), args.runs, "PostgreSQL only")

        if pgbouncer_available():
            bouncer = stack.enter_context(running_pgbouncer(pg, pool_mode="transaction", pool_size=5))
            admin = bouncer.dsn(dbname="pgbouncer")
            with_pool: dict[str, list[list[str]]] = {
                "triage": [cmd("triage", "-d", dsn, "--pgbouncer-dsn", admin)],
                "connections": sides["connections"],
                "the four commands (4 processes)": [
                    *sides["connections + locks + slow-queries (3 processes)"],
                    cmd("pgbouncer", "-d", admin),
                ],
            }
            if CHECK_POSTGRES:
                with_pool["check_postgres x4"] = sides["check_postgres x4"]
            report(measure(with_pool, args.runs), args.runs, "with --pgbouncer-dsn (PgBouncer in front)")


if __name__ == "__main__":
    start: Callable[[], None] = main
    start()
