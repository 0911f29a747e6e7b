"""Benchmark `--format openmetrics` (run by hand; figures go to benchmarks/README.md).

    .venv/bin/python benchmarks/openmetrics.py [--runs 11] [--sizes 1000 10000 100000]

Whole processes on synthetic `connections` snapshots of N sessions (benchmarks/connections.py makes them):
`-f json` against `-f openmetrics` (median wall time), and what `import prometheus_client` costs in a
fresh interpreter (only this format imports it).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.connections import PGDOCTOR, median_of, synthetic_snapshot  # noqa: E402


def import_cost_ms(runs: int) -> float:
    """Median extra wall time of `import prometheus_client` and its OpenMetrics writer, in-process."""
    code = (
        "import time; t = time.perf_counter(); import prometheus_client.openmetrics.exposition, "
        "prometheus_client.core, prometheus_client.registry; print((time.perf_counter() - t) * 1000)"
    )
    times = [
        float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)
        for _ in range(runs)
    ]
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    args = parser.parse_args()
    print(f"import prometheus_client (fresh interpreter): {import_cost_ms(args.runs):.0f} ms")
    print("| sessions | -f json | -f openmetrics | ratio |")
    print("|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"snap-{n}.json"
            synthetic_snapshot(n, path)
            base = [*PGDOCTOR, "connections", "--snapshot", str(path), "-f"]
            as_json = median_of([*base, "json"], args.runs)
            as_metrics = median_of([*base, "openmetrics"], args.runs)
            ratio = as_metrics / as_json
            print(f"| {n:,} | {as_json * 1000:.0f} ms | {as_metrics * 1000:.0f} ms | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
