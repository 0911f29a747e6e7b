"""Reproduce the saturated-server incident on real PostgreSQL 15 and 18 and record snapshots of it.

    .venv/bin/python scripts/record_fixtures.py [--versions 15 18] [--settle 90]

The incident (issue "connections"): 200 of 200 usable slots in use. data_loader_worker holds 127 idle
connections from SQLAlchemy QueuePool engines that never returned them; feature_service runs 58 long
queries; training_manager has 12 sessions idle in transaction, one holding a row lock; job_api sessions
queue behind that lock. An ordinary client is refused; pgdoctor gets in through a reserved slot.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import sqlalchemy  # noqa: E402

from pgdoctor.db import connect  # noqa: E402
from pgdoctor.snapshot import capture, save  # noqa: E402
from tests.incidents import Sessions, wait_for_active, wait_for_lock_waits  # noqa: E402
from tests.pgcluster import Cluster  # noqa: E402

APP_ROLE = "app"
USABLE = 200


def build_incident(pg: Cluster, sessions: Sessions) -> list[Any]:
    """Fill every usable slot the way the incident did; returns the SQLAlchemy engines to dispose."""
    pg.sql(f"CREATE ROLE {APP_ROLE} LOGIN")
    pg.sql(f"GRANT ALL ON SCHEMA public TO {APP_ROLE}")
    pg.sql("CREATE TABLE jobs (id int PRIMARY KEY, status text)", dbname="postgres")
    pg.sql("INSERT INTO jobs SELECT g, 'queued' FROM generate_series(1, 100) g")
    pg.sql(f"GRANT ALL ON jobs TO {APP_ROLE}")

    # 127 idle connections: 8 worker processes whose QueuePool (5 + 10 overflow) is exhausted and one
    # with 7 checked out; the code never returns them.
    engines = []
    leaked = []
    url = f"postgresql+psycopg://{APP_ROLE}@/postgres?host={pg.socket_dir}&port={pg.port}"
    for worker, checked_out in enumerate([15] * 8 + [7]):
        engine = sqlalchemy.create_engine(
            url,
            pool_size=5,
            max_overflow=10,
            pool_timeout=1,
            connect_args={"application_name": "data_loader_worker"},
        )
        engines.append(engine)
        for _ in range(checked_out):
            conn = engine.connect()
            conn.execute(sqlalchemy.text("SELECT 1"))
            conn.commit()
            leaked.append(conn)
        if worker == 0:
            try:
                engine.connect()
            except sqlalchemy.exc.TimeoutError as exc:
                print(f"data_loader_worker pool: {str(exc).splitlines()[0]}", file=sys.stderr)

    def close_leaked() -> None:
        for conn in leaked:
            conn.close()

    sessions.closers.append(close_leaked)

    runners = [
        sessions.send("feature_service", f"SELECT pg_sleep(3600) /* features batch {i} */", user=APP_ROLE)
        for i in range(58)
    ]
    holder = sessions.idle_in_transaction(
        "training_manager", "UPDATE jobs SET status = 'training' WHERE id = 1", user=APP_ROLE
    )
    for i in range(11):
        sessions.idle_in_transaction(
            "training_manager", f"SELECT status FROM jobs WHERE id = {i + 2}", user=APP_ROLE
        )
    waiters = [
        sessions.send("job_api", "UPDATE jobs SET status = 'cancelled' WHERE id = 1", user=APP_ROLE)
        for _ in range(3)
    ]
    wait_for_active(pg, runners)
    wait_for_lock_waits(pg, waiters)
    print(f"holder pid {holder}; waiters {waiters}", file=sys.stderr)
    return engines


def record(version: str, settle: float) -> Path:
    settings: dict[str, Any] = {"max_connections": USABLE + 3, "superuser_reserved_connections": 3}
    if version >= "16":
        settings = {
            "max_connections": USABLE + 5,
            "superuser_reserved_connections": 3,
            "reserved_connections": 2,
        }
    pg = Cluster(version, settings=settings).start()
    sessions = Sessions(pg)
    engines: list[Any] = []
    try:
        engines = build_incident(pg, sessions)
        try:
            psycopg.connect(pg.dsn(user=APP_ROLE, dbname="postgres"), connect_timeout=5).close()
            raise SystemExit("an ordinary client still got in: the incident is not reproduced")
        except psycopg.OperationalError as exc:
            print(f"ordinary client refused: {' '.join(str(exc).split())}", file=sys.stderr)
        print(f"letting the incident age for {settle:g}s", file=sys.stderr)
        time.sleep(settle)
        with connect(pg.dsn()) as db:  # the superuser, through a reserved slot
            document = capture(db)
        out = ROOT / "fixtures" / f"incident-pg{version}.json"
        save(document, out)
        print(f"wrote {out}", file=sys.stderr)
        return out
    finally:
        sessions.close()
        for engine in engines:
            engine.dispose()
        pg.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--versions", nargs="+", default=["15", "18"])
    parser.add_argument("--settle", type=float, default=90.0, help="seconds to let the incident age")
    args = parser.parse_args()
    for version in args.versions:
        record(version, args.settle)


if __name__ == "__main__":
    main()
