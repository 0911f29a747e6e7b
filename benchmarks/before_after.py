"""pgdoctor now against pgdoctor at an earlier commit, interleaved on the same server (run by hand).

    .venv/bin/python benchmarks/before_after.py --base 1cccb44 [--sessions 1000] [--runs 21] [--version 18]

A change that must not cost the user time (issue 10: "within 5 % of today's figures") is measured here:
both trees run against one server holding N client sessions, one run of each in turn, so load from
other jobs on a shared machine falls on both alike. Measured, as whole processes:
1. live `connections -f json` (and the bare psycopg script of benchmarks/bare_activity.py, for the ratio);
2. offline `connections --snapshot` of a 10,000-session snapshot, plain with `--sessions` and json.
The earlier tree is checked out with `git worktree` in a temp dir and removed afterwards.
"""

from __future__ import annotations

import argparse
import json
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

from tests.pgcluster import Cluster  # noqa: E402


def run(tree: Path, args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "NO_COLOR": "1"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *args], check=False, stdout=subprocess.DEVNULL, env=env, cwd=tree)
    if done.returncode not in (0, 1):  # a run that failed fast would look fast
        raise SystemExit(f"{tree}: {' '.join(args)} exited {done.returncode}")
    return time.perf_counter() - start


def format_1_snapshot(n: int, path: Path) -> None:
    """The recorded incident in snapshot format 1 (which every pgdoctor reads), its client sessions
    repeated with new pids until there are n."""
    doc = json.loads((ROOT / "fixtures" / "format-1" / "incident-pg18.json").read_text())
    data = doc["datasets"]["connections"]
    clients = [r for r in data["activity"] if r["backend_type"] == "client backend"]
    others = [r for r in data["activity"] if r["backend_type"] != "client backend"]
    rows = [{**clients[i % len(clients)], "pid": 100_000 + i} for i in range(n)]
    data["activity"] = others + rows
    for s in data["server"]["settings"]:
        if s["name"] == "max_connections":
            s["setting"] = str(n + 10)
    path.write_text(json.dumps(doc))


def interleaved(cases: dict[str, tuple[Path, list[str]]], runs: int) -> dict[str, float]:
    """Median wall seconds of each case, the cases taking turns run after run."""
    for tree, args in cases.values():
        run(tree, args)  # warm the page cache
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, (tree, args) in cases.items():
            times[name].append(run(tree, args))
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, help="the earlier commit")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--version", default="18")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pgdoctor-before-"))
    base = tmp / "base"
    git = ["git", "-C", str(ROOT), "worktree"]
    subprocess.run([*git, "add", "-q", "--detach", str(base), args.base], check=True)
    pg = Cluster(args.version, settings={"max_connections": args.sessions + 20, "shared_buffers": "'128MB'"})
    conns: list[Any] = []
    try:
        for tree in (base, ROOT):
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "pgdoctor")], check=True)
        snap = tmp / "snap-10000.json"
        format_1_snapshot(10_000, snap)
        pg.start()
        for i in range(args.sessions):
            raw = pq.PGconn.connect(pg.dsn(application_name=f"app_{i % 7}").encode())
            if raw.status != pq.ConnStatus.OK:
                raise RuntimeError(raw.get_error_message())
            conns.append(raw)
        dsn = pg.dsn()
        live = ["-m", "pgdoctor", "connections", "-d", dsn, "-f", "json"]
        bare = [str(ROOT / "benchmarks" / "bare_activity.py"), dsn]
        plain = ["-m", "pgdoctor", "connections", "--snapshot", str(snap), "-f", "plain", "--sessions"]
        json_ = ["-m", "pgdoctor", "connections", "--snapshot", str(snap), "-f", "json"]
        result = interleaved(
            {
                "live before": (base, live),
                "live now": (ROOT, live),
                "bare script": (ROOT, bare),
                "10k plain before": (base, plain),
                "10k plain now": (ROOT, plain),
                "10k json before": (base, json_),
                "10k json now": (ROOT, json_),
            },
            args.runs,
        )
    finally:
        for raw in conns:
            raw.finish()
        pg.stop()
        subprocess.run([*git, "remove", "--force", str(base)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"PostgreSQL {args.version}, {args.sessions} sessions, median of {args.runs} interleaved runs")
    for name, seconds in result.items():
        print(f"  {name:<18} {seconds * 1000:7.0f} ms")
    for what in ("live", "10k plain", "10k json"):
        now, before = result[f"{what} now"], result[f"{what} before"]
        print(f"  {what}: now / before = {now / before:.3f}")
    print(f"  live now / bare script = {result['live now'] / result['bare script']:.2f}x")


if __name__ == "__main__":
    main()
