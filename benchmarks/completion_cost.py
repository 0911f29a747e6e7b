"""What typer's own shell completion (`add_completion=True`: `--install-completion`, `--show-completion`)
costs every run (run by hand; issue 16).

    .venv/bin/python benchmarks/completion_cost.py [--runs 41]

Runs `pgdoctor connections --snapshot fixtures/incident-pg18.json -f json` as whole processes, the
command line built with and without typer's completion options, one run of each in turn (interleaved,
so load from other jobs on a shared machine falls on both alike), and prints the median wall times.
Both run through the same `python -c` launcher; only `add_completion` differs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["connections", "--snapshot", str(ROOT / "fixtures" / "incident-pg18.json"), "-f", "json"]
LAUNCH = """
import sys
import pgdoctor.cli as cli
if {completion}:
    plain = cli._App.__init__
    def with_completion(self, *args, **kwargs):
        kwargs["add_completion"] = True
        plain(self, *args, **kwargs)
    cli._App.__init__ = with_completion
cli.main(sys.argv[1:])
"""


def run(completion: bool) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    code = LAUNCH.format(completion=completion)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *ARGS], stdout=subprocess.DEVNULL, env=env, check=False
    )
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"run failed: exit {done.returncode}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=41)
    runs = parser.parse_args().runs
    run(False), run(True)  # warm the page cache and the bytecode
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(runs):
        for completion in (False, True):
            times[completion].append(run(completion))
    for completion, label in ((False, "add_completion=False"), (True, "add_completion=True")):
        t = sorted(ms * 1000 for ms in times[completion])
        print(f"{label:22} median {statistics.median(t):6.1f} ms  (min {t[0]:.1f}, max {t[-1]:.1f})")
    cost = statistics.median(b - a for a, b in zip(times[False], times[True], strict=True))
    print(f"median of the paired differences: {cost * 1000:+.1f} ms")


if __name__ == "__main__":
    main()
