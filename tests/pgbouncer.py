"""A throwaway PgBouncer (Debian's 1.18) in front of a `tests.pgcluster.Cluster`, for tests and benchmarks.

    with running_pgbouncer(pg, pool_mode="transaction", pool_size=2) as bouncer:
        psycopg.connect(bouncer.dsn())          # a client of the pool, over 127.0.0.1
        bouncer.admin("SHOW POOLS")             # the admin console (database `pgbouncer`)

PgBouncer runs as the `postgres` system user (like the clusters) with its own ini, auth file, unix socket
dir and log in a temp dir, on a free port. It reaches the server through the cluster's unix socket
(trust), so its server connections show no client address in `pg_stat_activity`. Clients authenticate
with `auth_type` (default `trust`: any user listed in the auth file). Every other setting is PgBouncer's
default unless given in `settings`; `ignore_startup_parameters` is left empty, as a default install has it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from tests.pgcluster import PASSWORD, RUN_AS, SUPERUSER, Cluster, _as_server_user, free_port

BINARY = Path(os.environ.get("PGDOCTOR_PGBOUNCER", "/usr/sbin/pgbouncer"))


def available() -> bool:
    return BINARY.exists()


class PgBouncer:
    """One PgBouncer process pooling every database of `cluster` (`[databases] * = …`)."""

    def __init__(
        self,
        cluster: Cluster,
        pool_mode: str = "transaction",
        pool_size: int = 5,
        users: Mapping[str, str] | None = None,
        auth_type: str = "trust",
        settings: Mapping[str, Any] | None = None,
        databases: Mapping[str, str] | None = None,
    ) -> None:
        self.cluster = cluster
        self.pool_mode = pool_mode
        self.base = Path(tempfile.mkdtemp(prefix="pgdoctor-test-pgbouncer-"))
        os.chmod(self.base, 0o755)
        self.socket_dir = self.base / "sock"
        self.port = free_port()
        self.users = {SUPERUSER: PASSWORD, **(users or {})}
        self.settings: dict[str, Any] = {
            "listen_addr": "127.0.0.1",
            "listen_port": self.port,
            "unix_socket_dir": str(self.socket_dir),
            "auth_type": auth_type,
            "auth_file": str(self.base / "userlist.txt"),
            "admin_users": SUPERUSER,
            "stats_users": SUPERUSER,
            "pool_mode": pool_mode,
            "default_pool_size": pool_size,
            "max_client_conn": 200,
            "logfile": str(self.base / "pgbouncer.log"),
            "pidfile": str(self.base / "pgbouncer.pid"),
        }
        self.settings.update(settings or {})
        # [databases] entries besides `*`: name -> extra parameters (`pool_size=3`), same server
        self.databases = dict(databases or {})
        self.process: subprocess.Popen[bytes] | None = None

    def write_config(self) -> Path:
        """pgbouncer.ini from `settings` and `databases` (again after a change: then RELOAD applies it)."""
        ini = self.base / "pgbouncer.ini"
        server = f"host={self.cluster.socket_dir} port={self.cluster.port}"
        entries = [
            f"{name} = {server} dbname=postgres {extra}".rstrip() for name, extra in self.databases.items()
        ]
        lines = ["[databases]", *entries, f"* = {server}", "", "[pgbouncer]"]
        lines += [f"{key} = {value}" for key, value in self.settings.items()]
        ini.write_text("\n".join(lines) + "\n")
        return ini

    def start(self) -> PgBouncer:
        self.socket_dir.mkdir()
        ini = self.write_config()
        userlist = "".join(f'"{user}" "{password}"\n' for user, password in self.users.items())
        (self.base / "userlist.txt").write_text(userlist)
        if os.geteuid() == 0:
            for path in (self.base, self.socket_dir, ini, self.base / "userlist.txt"):
                shutil.chown(path, RUN_AS)
        self.process = subprocess.Popen(
            _as_server_user([str(BINARY), str(ini)]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                self.admin("SHOW VERSION")
                return self
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"pgbouncer did not start:\n{self.log()}") from None
                time.sleep(0.05)

    def log(self) -> str:
        path = self.base / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None:
            # the process runs as the postgres user under runuser: signal PgBouncer itself (its pidfile),
            # then wait for runuser to go
            pidfile = self.base / "pgbouncer.pid"
            try:
                os.kill(int(pidfile.read_text().strip()), 15)
            except (OSError, ValueError):
                self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None
        shutil.rmtree(self.base, ignore_errors=True)

    def dsn(self, user: str = SUPERUSER, dbname: str = "postgres", **extra: str) -> str:
        """A libpq conninfo for a client of the pool, over TCP on 127.0.0.1."""
        parts = {"host": "127.0.0.1", "port": str(self.port), "user": user, "dbname": dbname, **extra}
        if self.settings["auth_type"] != "trust" and "password" not in parts:
            parts["password"] = self.users[user]
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A client of the pool; prepared statements off (PgBouncer 1.18 cannot pool them)."""
        dsn_args = {k: kwargs.pop(k) for k in ("user", "dbname") if k in kwargs}
        kwargs.setdefault("autocommit", True)
        kwargs.setdefault("prepare_threshold", None)
        return psycopg.connect(self.dsn(**dsn_args), **kwargs)

    def admin(self, command: str) -> list[dict[str, Any]]:
        """Run a command on the admin console (`SHOW POOLS`, `SHOW SERVERS`, …) as rows of dicts."""
        from psycopg.rows import dict_row

        with psycopg.connect(
            self.dsn(dbname="pgbouncer"), autocommit=True, connect_timeout=2, row_factory=dict_row
        ) as conn:
            cur = conn.execute(command.encode(), prepare=False)
            return list(cur.fetchall()) if cur.description else []


@contextmanager
def running_pgbouncer(cluster: Cluster, **kwargs: Any) -> Iterator[PgBouncer]:
    bouncer = PgBouncer(cluster, **kwargs)
    try:
        yield bouncer.start()
    finally:
        bouncer.stop()
