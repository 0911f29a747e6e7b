"""Benchmark `pgdoctor connections` (run by hand; figures go to benchmarks/README.md).

    .venv/bin/python benchmarks/connections.py [--sessions 1000] [--runs 15] [--version 18]

1. End to end, as whole processes, against a local server holding N client sessions:
   `pgdoctor connections -f json` vs a bare script that imports psycopg, connects and fetches the same rows.
2. `pgdoctor --help`.
3. Analysis + rendering of synthetic snapshots of 1,000 / 10,000 / 100,000 sessions (wall time and peak
   RSS of the whole process, `--format plain` and `--format json` with `--sessions`, and plain without).
   `--offline`: only this part.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from psycopg import pq  # noqa: E402

from tests.pgcluster import Cluster  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
PGDOCTOR = [sys.executable, "-m", "pgdoctor"]


def timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=ENV)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(after, before)


def median_of(cmd: list[str], runs: int) -> float:
    timed(cmd)  # warm the page cache
    return statistics.median(timed(cmd)[0] for _ in range(runs))


def peak_rss_kib(cmd: list[str]) -> tuple[float, int]:
    """Wall time and peak RSS measured by GNU time, isolated from earlier children."""
    out = subprocess.run(
        ["/usr/bin/time", "-f", "%e %M", *cmd],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    wall, rss = out.stderr.strip().splitlines()[-1].split()
    return float(wall), int(rss)


def live(version: str, n: int, runs: int) -> dict[str, Any]:
    pg = Cluster(version, settings={"max_connections": n + 20, "shared_buffers": "'128MB'"}).start()
    conns: list[Any] = []
    try:
        for i in range(n):
            raw = pq.PGconn.connect(pg.dsn(application_name=f"app_{i % 7}").encode())
            if raw.status != pq.ConnStatus.OK:
                raise RuntimeError(raw.get_error_message())
            conns.append(raw)
        dsn = pg.dsn()
        ours = [*PGDOCTOR, "connections", "-d", dsn, "-f", "json"]
        bare = [sys.executable, str(ROOT / "benchmarks" / "bare_activity.py"), dsn]
        timed(ours), timed(bare)  # warm the page cache
        a, b = [], []
        for _ in range(runs):  # interleaved, so drift on a shared machine hits both alike
            a.append(timed(ours)[0])
            b.append(timed(bare)[0])
        tool, base = statistics.median(a), statistics.median(b)
        return {"sessions": n, "pgdoctor_s": tool, "bare_s": base, "ratio": tool / base}
    finally:
        for raw in conns:
            raw.finish()
        pg.stop()


def synthetic_snapshot(n: int, path: Path) -> None:
    """The recorded incident, its sessions repeated (new pids) until there are n clients."""
    doc = json.loads((ROOT / "fixtures" / "incident-pg18.json").read_text())
    activity = doc["activity"]
    clients = [r for r in activity if r["backend_type"] == "client backend"]
    others = [r for r in activity if r["backend_type"] != "client backend"]
    rows = []
    for i in range(n):
        row = dict(clients[i % len(clients)])
        row["pid"] = 100_000 + i
        row["application_name"] = f"{row['application_name']}_{i % 50}"
        rows.append(row)
    doc["activity"] = others + rows
    for s in doc["server"]["settings"]:
        if s["name"] == "max_connections":
            s["setting"] = str(n + 10)
    path.write_text(json.dumps(doc))


def offline(sizes: list[int]) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"snap-{n}.json"
            synthetic_snapshot(n, path)
            for fmt, listed in (("plain", True), ("json", True), ("plain", False)):
                cmd = [*PGDOCTOR, "connections", "--snapshot", str(path), "-f", fmt]
                cmd += ["--sessions"] if listed else []
                runs = [peak_rss_kib(cmd) for _ in range(3)]
                results.append(
                    {
                        "sessions": n,
                        "format": fmt + (" --sessions" if listed else ""),
                        "wall_s": statistics.median(r[0] for r in runs),
                        "peak_rss_mb": max(r[1] for r in runs) / 1024,
                        "file_mb": path.stat().st_size / 1e6,
                    }
                )
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--version", default="18")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--offline", action="store_true", help="only the snapshot analysis (no server)")
    args = parser.parse_args()
    # An installed pgdoctor has its bytecode compiled by pip; this source tree may not (and
    # PYTHONDONTWRITEBYTECODE may be set), so compile it once rather than time the compiler.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "pgdoctor")], check=True)

    if not args.offline:
        help_s = median_of([*PGDOCTOR, "--help"], args.runs)
        print(f"pgdoctor --help: median {help_s * 1000:.0f} ms over {args.runs} runs")
        result = live(args.version, args.sessions, args.runs)
        print(
            f"live, PostgreSQL {args.version}, {result['sessions']} client sessions, median of {args.runs}: "
            f"pgdoctor connections {result['pgdoctor_s'] * 1000:.0f} ms, bare psycopg script "
            f"{result['bare_s'] * 1000:.0f} ms, ratio {result['ratio']:.2f}x"
        )
    print("offline (snapshot -> analyze -> render, whole process, median of 3):")
    print(f"{'sessions':>9} {'format':>16} {'wall s':>7} {'peak RSS MB':>11} {'file MB':>8}")
    for r in offline(args.sizes):
        cells = f"{r['sessions']:>9} {r['format']:>16} {r['wall_s']:>7.2f}"
        print(f"{cells} {r['peak_rss_mb']:>11.0f} {r['file_mb']:>8.1f}")


if __name__ == "__main__":
    main()
