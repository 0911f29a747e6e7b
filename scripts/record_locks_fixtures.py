"""Build a lock pile-up on real PostgreSQL 15 and 18 and record snapshots of it (fixtures/locks-pg*.json).

    .venv/bin/python scripts/record_locks_fixtures.py [--versions 15 18] [--settle 20]

The situation, every kind of wait `pgdoctor locks` draws:
- billing holds a row lock idle in transaction; four job_api updates queue behind it (the first on
  the holder's transaction id, the others on the tuple lock the first one holds);
- reporting runs a long read of `events`; a migration's ALTER TABLE waits for ACCESS EXCLUSIVE behind
  it and three web readers queue behind the migration;
- jobs_leader holds session-level advisory locks (a bigint key and an int4 pair) while idle;
  two jobs_worker sessions wait for them;
- sync_a (ROW SHARE) and sync_b (SHARE) both block exporter's EXCLUSIVE lock on `ledger`;
- left and right wait on each other's rows (deadlock_timeout raised so the cycle stays).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pgdoctor.db import connect  # noqa: E402
from pgdoctor.snapshot import capture, save  # noqa: E402
from tests.incidents import Sessions, wait_for_active, wait_for_lock_waits  # noqa: E402
from tests.pgcluster import Cluster  # noqa: E402


def build(pg: Cluster, sessions: Sessions) -> list[int]:
    """Set the scene; returns the pids that wait."""
    pg.sql("CREATE TABLE jobs (id int PRIMARY KEY, status text)")
    pg.sql("INSERT INTO jobs SELECT g, 'queued' FROM generate_series(1, 100) g")
    pg.sql("CREATE TABLE events (id int, payload text)")
    pg.sql("INSERT INTO events SELECT g, 'x' FROM generate_series(1, 1000) g")
    pg.sql("CREATE TABLE ledger (id int)")
    waiting: list[int] = []

    sessions.idle_in_transaction("billing", "UPDATE jobs SET status = 'billing' WHERE id = 1")
    for i in range(4):
        waiting.append(sessions.send("job_api", f"UPDATE jobs SET status = 'api {i}' WHERE id = 1"))
        wait_for_lock_waits(pg, waiting)

    reader = sessions.send("reporting", "SELECT count(*), pg_sleep(3600) FROM events")
    wait_for_active(pg, [reader])
    time.sleep(0.5)
    waiting.append(sessions.send("migration", "ALTER TABLE events ADD COLUMN source text"))
    wait_for_lock_waits(pg, waiting)
    for _ in range(3):
        waiting.append(sessions.send("web", "SELECT * FROM events WHERE id = 42"))
        wait_for_lock_waits(pg, waiting)

    leader = sessions.open("jobs_leader")
    leader.execute("SELECT pg_advisory_lock(-5000000000), pg_advisory_lock(7, -3)")
    waiting.append(sessions.send("jobs_worker", "SELECT pg_advisory_lock(-5000000000)"))
    waiting.append(sessions.send("jobs_worker", "SELECT pg_advisory_xact_lock(7, -3)"))
    wait_for_lock_waits(pg, waiting)

    sessions.idle_in_transaction("sync_a", "LOCK TABLE ledger IN ROW SHARE MODE")
    sessions.idle_in_transaction("sync_b", "LOCK TABLE ledger IN SHARE MODE")
    waiting.append(sessions.send("exporter", "BEGIN; LOCK TABLE ledger IN EXCLUSIVE MODE"))
    wait_for_lock_waits(pg, waiting)

    conns = []
    for app, row in (("left", 50), ("right", 51)):
        conn = sessions.open(app)
        conn.execute("SET deadlock_timeout = '1h'")
        conn.execute("BEGIN")
        conn.execute(f"UPDATE jobs SET status = '{app}' WHERE id = {row}".encode())
        conns.append(conn)
    conns[0].pgconn.send_query(b"UPDATE jobs SET status = 'left' WHERE id = 51")
    conns[1].pgconn.send_query(b"UPDATE jobs SET status = 'right' WHERE id = 50")
    waiting += [c.info.backend_pid for c in conns]
    wait_for_lock_waits(pg, waiting)
    return waiting


def record(version: str, settle: float) -> Path:
    pg = Cluster(version).start()
    sessions = Sessions(pg)
    try:
        waiting = build(pg, sessions)
        print(f"{len(waiting)} sessions wait; letting it age {settle:g}s", file=sys.stderr)
        time.sleep(settle)
        with connect(pg.dsn()) as db:
            document: dict[str, Any] = capture(db)
        out = ROOT / "fixtures" / f"locks-pg{version}.json"
        save(document, out)
        print(f"wrote {out}", file=sys.stderr)
        return out
    finally:
        sessions.close()
        pg.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--versions", nargs="+", default=["15", "18"])
    parser.add_argument("--settle", type=float, default=20.0, help="seconds to let the waits age")
    args = parser.parse_args()
    for version in args.versions:
        record(version, args.settle)


if __name__ == "__main__":
    main()
