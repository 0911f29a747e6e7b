"""Benchmark `pgdoctor pgbouncer` (run by hand; figures go to benchmarks/README.md).

    .venv/bin/python benchmarks/pgbouncer.py [--clients 1000] [--runs 9] [--version 15]

End to end, as whole processes, against a PgBouncer (Debian's) holding N client connections (raw sockets
that complete the startup handshake, then sit idle: cheap to open): `pgdoctor pgbouncer -f json` vs a
bare script that imports psycopg, connects to the admin console and fetches the same eight SHOWs.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.pgbouncer import running_pgbouncer  # noqa: E402
from tests.pgcluster import SUPERUSER, Cluster  # noqa: E402

BARE = """
import sys, psycopg
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    for what in ("VERSION", "POOLS", "DATABASES", "CLIENTS", "SERVERS", "CONFIG", "STATS", "LISTS"):
        cur = psycopg.ClientCursor(conn)
        cur.execute("SHOW " + what)
        cur.fetchall()
"""


def open_client(port: int) -> socket.socket:
    """A client of the pool: the startup packet (trust auth), read up to ReadyForQuery, then idle."""
    sock = socket.create_connection(("127.0.0.1", port))
    params = b"user\0" + SUPERUSER.encode() + b"\0database\0postgres\0\0"
    sock.sendall(struct.pack("!II", 8 + len(params), 196608) + params)
    data = b""
    while b"Z\0\0\0\x05" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError(f"PgBouncer closed a client: {data!r}")
        data += chunk
    return sock


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--version", default="15")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cluster = Cluster(args.version).start()
    try:
        settings = {"max_client_conn": args.clients + 100}
        with running_pgbouncer(cluster, pool_size=5, settings=settings) as bouncer:
            socks = [open_client(bouncer.port) for _ in range(args.clients)]
            pools = bouncer.admin("SHOW POOLS")
            held = sum(p["cl_active"] for p in pools if p["database"] == "postgres")
            admin = bouncer.dsn(dbname="pgbouncer")
            ours = [sys.executable, "-m", "pgdoctor", "pgbouncer", "--dsn", admin, "-f", "json"]
            bare = [sys.executable, "-c", BARE, admin]
            timed(ours, env), timed(bare, env)  # warm caches
            a, b = [], []
            for _ in range(args.runs):  # interleaved, so drift hits both alike
                a.append(timed(ours, env))
                b.append(timed(bare, env))
            for s in socks:
                s.close()
    finally:
        cluster.stop()
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"PgBouncer clients held: {held}; runs: {args.runs}")
    print(f"pgdoctor pgbouncer -f json: median {ma:.3f} s (min {min(a):.3f}, max {max(a):.3f})")
    print(f"bare psycopg, same SHOWs:   median {mb:.3f} s (min {min(b):.3f}, max {max(b):.3f})")
    print(f"ratio: {ma / mb:.2f}x")


if __name__ == "__main__":
    main()
