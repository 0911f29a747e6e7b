"""The speed targets of issues 11 and 12, now against an earlier commit, interleaved (run by hand).

    .venv/bin/python benchmarks/fast_paths.py [--base COMMIT] [--runs 15] [--clients 1000] [--version 15]

As whole processes, one run of each case in turn (load from other jobs on a shared machine falls on all
alike), medians of wall time and of CPU time (user + system, from the kernel: steadier than wall time
on a busy machine, and what wall time is on an idle one), peak RSS by GNU time:
1. `pgdoctor pgbouncer -f json` against PgBouncer (Debian's) holding N idle clients, and the bare psycopg
   script running the same eight SHOWs (benchmarks/pgbouncer.py); target (issue 12): within 1.5x;
2. `pgdoctor connections -f json` live against PostgreSQL holding N idle sessions, and the bare script
   of benchmarks/bare_activity.py; issue 9 asked for 1.3x;
3. `connections --snapshot` of a 100,000-session snapshot (benchmarks/connections.py makes it), default
   view, plain and json; target (issue 11): under 1 s and 150 MB.
With --base, the earlier tree is checked out with `git worktree` in a temp dir and removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
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

from benchmarks.connections import synthetic_snapshot  # noqa: E402
from benchmarks.pgbouncer import BARE, open_client  # noqa: E402
from tests.pgbouncer import running_pgbouncer  # noqa: E402
from tests.pgcluster import Cluster  # noqa: E402

Case = tuple[Path, list[str]]


def run(tree: Path, args: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one `python ARGS` process in `tree`. Peak RSS comes
    from GNU time, which starts the process: a child of this (large) script would inherit its high-water
    mark through fork."""
    env = {**os.environ, "PYTHONPATH": str(tree), "NO_COLOR": "1"}
    cmd = ["/usr/bin/time", "-f", "%M %U %S", sys.executable, *args]
    start = time.perf_counter()
    done = subprocess.run(
        cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=tree
    )
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1):  # a run that failed fast would look fast
        raise SystemExit(f"{tree}: {' '.join(args)} exited {done.returncode}: {done.stderr[-500:]}")
    rss_kib, user, system = done.stderr.strip().splitlines()[-1].split()
    return wall, float(user) + float(system), int(rss_kib) / 1024


def interleaved(cases: dict[str, Case], runs: int) -> dict[str, list[tuple[float, float, float]]]:
    for tree, args in cases.values():
        run(tree, args)  # warm the page cache
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, (tree, args) in cases.items():
            results[name].append(run(tree, args))
    return results


def report(
    results: dict[str, list[tuple[float, float, float]]], labels: list[str], what: str, runs: int
) -> None:
    print(f"{what}, {runs} interleaved runs")
    print(f"{'case':<22} {'wall median':>11} {'min':>7} {'CPU median':>10} {'peak RSS':>9}")
    wall = {name: statistics.median(r[0] for r in rs) for name, rs in results.items()}
    cpu = {name: statistics.median(r[1] for r in rs) for name, rs in results.items()}
    for name, rs in results.items():
        low = min(r[0] for r in rs)
        rss = max(r[2] for r in rs)
        figures = f"{wall[name] * 1000:9.0f} ms {low * 1000:5.0f} ms {cpu[name] * 1000:8.0f} ms {rss:6.0f} MB"
        print(f"{name:<22} {figures}")
    for label in labels:
        for command in ("pgbouncer", "connections"):
            name = f"{command} {label}"
            print(
                f"{name}: {wall[name] / wall[f'{command} bare']:.2f}x the bare script (wall), "
                f"{cpu[name] / cpu[f'{command} bare']:.2f}x (CPU)"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", help="the earlier commit (default: only this tree)")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--version", default="15")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pgdoctor-fast-"))
    trees = {"now": ROOT}
    git = ["git", "-C", str(ROOT), "worktree"]
    if args.base:
        trees = {"before": tmp / "base", **trees}
        subprocess.run([*git, "add", "-q", "--detach", str(trees["before"]), args.base], check=True)
    for tree in trees.values():
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "pgdoctor")], check=True)
    snap = tmp / "snap-100000.json"
    synthetic_snapshot(100_000, snap)
    n = args.clients
    pg = Cluster(args.version, settings={"max_connections": n + 150, "shared_buffers": "'128MB'"}).start()
    conns: list[Any] = []
    try:
        with running_pgbouncer(pg, pool_size=5, settings={"max_client_conn": n + 100}) as bouncer:
            socks = [open_client(bouncer.port) for _ in range(n)]
            for i in range(n):
                raw = pq.PGconn.connect(pg.dsn(application_name=f"app_{i % 7}").encode())
                if raw.status != pq.ConnStatus.OK:
                    raise RuntimeError(raw.get_error_message())
                conns.append(raw)
            admin, dsn = bouncer.dsn(dbname="pgbouncer"), pg.dsn()
            cases: dict[str, Case] = {
                "pgbouncer bare": (ROOT, ["-c", BARE, admin]),
                "connections bare": (ROOT, [str(ROOT / "benchmarks" / "bare_activity.py"), dsn]),
            }
            offline = ["-m", "pgdoctor", "connections", "--snapshot", str(snap), "-f"]
            pgb = ["-m", "pgdoctor", "pgbouncer", "--dsn", admin, "-f", "json"]
            live = ["-m", "pgdoctor", "connections", "-d", dsn, "-f", "json"]
            for label, tree in trees.items():
                cases[f"pgbouncer {label}"] = (tree, pgb)
                cases[f"connections {label}"] = (tree, live)
                cases[f"100k plain {label}"] = (tree, [*offline, "plain"])
                cases[f"100k json {label}"] = (tree, [*offline, "json"])
            results = interleaved(cases, args.runs)
            for sock in socks:
                sock.close()
    finally:
        for raw in conns:
            raw.finish()
        pg.stop()
        if args.base:
            subprocess.run([*git, "remove", "--force", str(trees["before"])], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    report(
        results, list(trees), f"{n} clients (PgBouncer), {n} sessions (PostgreSQL {args.version})", args.runs
    )


if __name__ == "__main__":
    main()
