"""Benchmark the findings' actions (run by hand): how much of `connections`' analysis goes into writing
the statements, on synthetic snapshots where the findings name most sessions (the worst case: every
application's idle sessions are named, `--leak-share-pct 0.1`).

    .venv/bin/python benchmarks/actions.py [--sizes 10000 100000] [--runs 7]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.connections import synthetic_snapshot  # noqa: E402
from pgdoctor.analyze import actions, connections  # noqa: E402
from pgdoctor.collect.connections import ConnectionsData  # noqa: E402
from pgdoctor.snapshot import load_dataset  # noqa: E402

SPENT = [0.0]


def timed(f: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return f(*args, **kwargs)
        finally:
            SPENT[0] += time.perf_counter() - start

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    for name in ("terminate_sessions", "end_sessions", "end_session", "prevent"):
        setattr(actions, name, timed(getattr(actions, name)))
    print("| sessions | findings | named | action text | analysis | of which actions |")
    print("|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"snap-{n}.json"
            synthetic_snapshot(n, path)
            data = load_dataset(path, "connections", ConnectionsData)
            total, spent = [], []
            for _ in range(args.runs):
                SPENT[0] = 0.0
                start = time.perf_counter()
                report = connections.analyze(data, leak_share_pct=0.1)
                total.append(time.perf_counter() - start)
                spent.append(SPENT[0])
            named = sum(len(f.pids) for f in report.findings if f.action)
            text = sum(len(f.action) for f in report.findings)
            print(
                f"| {n:,} | {len(report.findings)} | {named:,} | {text / 1000:.0f} kB | "
                f"{statistics.median(total) * 1000:.0f} ms | {statistics.median(spent) * 1000:.0f} ms |"
            )


if __name__ == "__main__":
    main()
