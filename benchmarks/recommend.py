"""How fast `pgdoctor recommend` is, offline and against a live server; run by hand.

    python benchmarks/recommend.py

Measures (bounded: a few seconds per row, one throwaway PostgreSQL 18 cluster):
- `pgdoctor recommend --ram 128G` end to end as a process (what a user waits for), and which database
  libraries it imported (none may be, offline);
- the analysis alone for large topologies (in process);
- `pgdoctor recommend -d … --ram 2G` against a server with 100 idle client sessions.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RUNS = 10


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pgdoctor", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


def timed(runs: int, fn: object) -> tuple[float, float]:
    assert callable(fn)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, max(times) * 1000


def imported_db_libraries() -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pgdoctor", "recommend", "--ram", "128G", "-f", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    names = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    return sorted(names & {"psycopg", "psycopg2", "sqlalchemy", "asyncpg", "psycopg_binary"})


def main() -> None:
    from pgdoctor.analyze.recommend import Inputs, analyze
    from pgdoctor.analyze.sizing.pools import AppSpec

    rows: list[tuple[str, str, str]] = []

    def offline() -> None:
        assert cli("recommend", "--ram", "128G", "-f", "plain").returncode == 0

    med, worst = timed(RUNS, offline)
    rows.append(("recommend --ram 128G (process, offline)", f"{med:.0f} ms", f"{worst:.0f} ms"))
    med_h, worst_h = timed(RUNS, lambda: cli("--help"))
    rows.append(("pgdoctor --help (process, for scale)", f"{med_h:.0f} ms", f"{worst_h:.0f} ms"))

    def big() -> None:
        apps = tuple(AppSpec(f"app{i}", 1 + i % 500, 1 + i % 8) for i in range(1000))
        analyze(Inputs(1024**4, 96, "nvme", "oltp", apps=apps))

    med, worst = timed(RUNS, big)
    rows.append(("analysis, 1000 applications (in process)", f"{med:.1f} ms", f"{worst:.1f} ms"))

    from tests.incidents import Sessions
    from tests.pgcluster import Cluster

    cluster = Cluster("18", settings={"max_connections": 200}).start()
    try:
        sessions = Sessions(cluster)
        for i in range(100):
            sessions.idle(f"bench_app_{i % 5}")

        def live() -> None:
            result = cli("recommend", "-d", cluster.dsn(), "--ram", "2G", "-f", "json")
            assert result.returncode == 0, result.stderr

        med, worst = timed(RUNS, live)
        rows.append(("recommend -d … --ram 2G, 100 sessions (process)", f"{med:.0f} ms", f"{worst:.0f} ms"))
        sessions.close()
    finally:
        cluster.stop()

    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  {'median':>9}  {'max':>9}   ({RUNS} runs each)")
    for what, med_s, worst_s in rows:
        print(f"{what:<{width}}  {med_s:>9}  {worst_s:>9}")
    libs = imported_db_libraries()
    print(f"database libraries imported offline: {', '.join(libs) if libs else 'none'}")


if __name__ == "__main__":
    main()
