"""Record a small connection incident on a real PostgreSQL 15 (and PgBouncer) with `pgdoctor record`, into
fixtures/recording-incident.jsonl, for the offline tests of `pgdoctor timeline` and the README example.

    .venv/bin/python scripts/record_timeline_fixture.py [--out fixtures/recording-incident.jsonl]

max_connections = 50 (47 usable). Each phase starts when the recording has reached a tick number, so the
story is the same however busy the machine is:
- from the start: `web` holds 3 sessions (one running a long query), `ml-train` 2 idle ones;
- tick 4 on: ml-train leaks 4 idle connections a tick, up to 38 (capacity warning, then critical; its
  idle connections reported as a leak);
- tick 8: `worker` opens a transaction, updates a row and goes quiet (idle in transaction);
- tick 11: 5 clients of `api` run 4 s queries through PgBouncer (pool_size 2): 3 wait in its queue;
- tick 13: 2 more `web` sessions update the same row: blocked behind worker;
- tick 24: the operator terminates ml-train's idle connections;
- tick 28: worker's transaction ends (the blocked sessions go on);
- tick 36: the recorder is stopped with SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.incidents import Sessions, wait_for_lock_waits  # noqa: E402
from tests.pgbouncer import PgBouncer, running_pgbouncer  # noqa: E402
from tests.pgcluster import Cluster  # noqa: E402

THRESHOLDS = ["--idle-xact-warn", "2", "--blocked-crit", "3"]


def ticks(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(1 for line in path.read_bytes().splitlines() if line.startswith(b'{"kind":"tick"'))


def until(path: Path, n: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while ticks(path) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the recording did not reach tick {n}")
        time.sleep(0.05)


def incident(out: Path, pg: Cluster, bouncer: PgBouncer, s: Sessions) -> None:
    """The phases, each started when the recording has reached its tick."""
    leaked = 2
    api: list[Any] = []
    threads: list[threading.Thread] = []
    for tick in range(4, 13):
        until(out, tick)
        if leaked < 38:
            s.idle("ml-train", 4)
            leaked += 4
        if tick == 8:
            s.idle_in_transaction("worker", "UPDATE jobs SET status = 'running' WHERE id = 1")
            worker = s.conns[-1]
        if tick == 11:
            api = [bouncer.connect(application_name="api") for _ in range(5)]
            threads = [threading.Thread(target=c.execute, args=("SELECT pg_sleep(4)",)) for c in api]
            for t in threads:
                t.start()
    while leaked < 38:
        s.idle("ml-train", 4)
        leaked += 4
    until(out, 13)
    blocked = [s.send("web", "UPDATE jobs SET status = 'done' WHERE id = 1") for _ in range(2)]
    wait_for_lock_waits(pg, blocked)
    until(out, 24)
    pg.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'ml-train' AND state = 'idle'"
    )
    until(out, 28)
    worker.execute("COMMIT")
    until(out, 36)
    for t in threads:
        t.join()
    for c in api:
        c.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "fixtures" / "recording-incident.jsonl")
    parser.add_argument("--every", default="0.5s")
    args = parser.parse_args()
    out: Path = args.out
    out.unlink(missing_ok=True)
    pg = Cluster("15", settings={"max_connections": 50}).start()
    try:
        pg.sql("CREATE TABLE jobs (id int PRIMARY KEY, status text)")
        pg.sql("INSERT INTO jobs SELECT g, 'queued' FROM generate_series(1, 10) g")
        with running_pgbouncer(pg, pool_mode="transaction", pool_size=2) as bouncer:
            s = Sessions(pg)
            s.idle("web", 2)
            s.send("web", "SELECT pg_sleep(600)")
            s.idle("ml-train", 2)
            recorder = subprocess.Popen(
                [sys.executable, "-m", "pgdoctor", "record", "-d", pg.dsn(), "-o", str(out),
                 "--every", args.every, "--pgbouncer-dsn", bouncer.dsn(dbname="pgbouncer"), *THRESHOLDS],
                cwd=ROOT,
            )  # fmt: skip
            try:
                incident(out, pg, bouncer, s)
            finally:
                recorder.send_signal(signal.SIGINT)
                recorder.wait(timeout=30)
                s.conns = [c for c in s.conns if not c.closed]
                for c in s.conns:
                    c.close()
                s.conns = []
                s.close()
    finally:
        pg.stop()
    print(f"{out}: {ticks(out)} ticks, {out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
