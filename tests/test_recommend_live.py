"""`pgdoctor recommend` against real servers: the conf block starts PostgreSQL, the ini block starts
PgBouncer, the create_engine() arguments connect, and the live comparison reads the running server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import pq

from pgdoctor.analyze.sizing.units import conf_bytes
from tests.conftest import run_cli
from tests.incidents import Sessions, wait_until
from tests.pgcluster import PASSWORD, RUN_AS, VERSIONS, Cluster, _as_server_user, free_port, running_cluster

pytestmark = pytest.mark.server

PGBOUNCER = Path("/usr/sbin/pgbouncer")
TIME_UNIT_MS = {"ms": 1, "s": 1000, "min": 60_000}
# base units of a few settings ("Resource Consumption" in the docs); 0: a plain number
POSTGRES_C_UNITS = {
    "shared_buffers": 8192,
    "effective_cache_size": 8192,
    "work_mem": 1024,
    "max_connections": 0,
}


def recommend(*args: str) -> str:
    result = run_cli("recommend", *args)
    assert result.returncode in (0, 1), result.stderr
    return result.stdout


def recommend_json(*args: str) -> dict[str, Any]:
    return dict(json.loads(recommend(*args, "-f", "json")))


def shared_dir() -> Path:
    """A temp dir the server's system user can read."""
    d = Path(tempfile.mkdtemp(prefix="pgdoctor-recommend-"))
    os.chmod(d, 0o755)
    return d


def write_readable(path: Path, text: str) -> Path:
    path.write_text(text)
    os.chmod(path, 0o644)
    return path


def server_value_matches(cluster: Cluster, name: str, value: str) -> bool:
    """Does the server hold `value` for `name`? Sizes compared by the server's own pg_size_bytes."""
    setting, unit, vartype = cluster.sql(
        "SELECT setting, coalesce(unit, ''), vartype FROM pg_settings WHERE name = %s", [name]
    )[0]
    if conf_bytes(value) is not None:
        unit_bytes = cluster.sql(
            "SELECT pg_size_bytes(CASE WHEN %s ~ '^[0-9]' THEN %s ELSE '1' || %s END)", [unit, unit, unit]
        )[0][0]
        wanted = cluster.sql("SELECT pg_size_bytes(%s)", [value])[0][0]
        return bool(abs(int(setting) * unit_bytes - wanted) < unit_bytes)
    if unit in TIME_UNIT_MS:
        wanted_ms = cluster.sql("SELECT extract(epoch FROM %s::interval) * 1000", [value])[0][0]
        return float(setting) * TIME_UNIT_MS[unit] == float(wanted_ms)
    if vartype in ("integer", "real") and not unit:
        return float(setting) == float(value)
    shown = cluster.sql("SELECT current_setting(%s)", [name])[0][0]
    return bool(value in (shown, setting))


@pytest.mark.parametrize("version", VERSIONS)
def test_conf_block_starts_a_real_server_and_the_live_comparison_agrees(version: str) -> None:
    args = ["--ram", "2G", "--cpus", "8", "--storage", "nvme", "--app", "web=300", "--pg-version", version]
    block = recommend(*args, "-f", "conf")
    wanted = {s["name"]: s for s in recommend_json(*args)["settings"]}
    folder = shared_dir()
    conf = write_readable(folder / "recommend.conf", block)
    try:
        with running_cluster(version, settings={"include": f"'{conf}'"}) as cluster:
            assert cluster.sql("SELECT name, error FROM pg_file_settings WHERE error IS NOT NULL") == []
            for name, s in wanted.items():
                if s["per_role"] or s["value"] is None:
                    continue
                source = cluster.sql("SELECT source, sourcefile FROM pg_settings WHERE name = %s", [name])[0]
                assert source == ("configuration file", str(conf)), name
                assert server_value_matches(cluster, name, s["value"]), (name, s["value"])
            # pgdoctor on the server it configured: the same recommendations, nothing left to change
            # except build-dependent values the server turns out to support
            live = recommend_json("-d", cluster.dsn(), *args)
            enumvals = dict(cluster.sql("SELECT name, enumvals FROM pg_settings WHERE enumvals IS NOT NULL"))
            for s in live["settings"]:
                if s["per_role"]:
                    continue
                if s["name"] == "wal_compression":
                    assert s["value"] == ("lz4" if "lz4" in enumvals["wal_compression"] else "pglz")
                    assert s["changes"] is (s["value"] == "lz4")
                    continue
                assert s["current"] == s["value"], s
                assert s["changes"] is False, s
            if "io_method" in enumvals:
                names = [s["name"] for s in live["settings"]]
                assert ("io_method" in names) is ("io_uring" in enumvals["io_method"])
            # a change that waits for a restart shows up as such
            cluster.sql("ALTER SYSTEM SET max_connections = 77")
            cluster.sql("SELECT pg_reload_conf()")
            wait_until(
                lambda: cluster.sql("SELECT pending_restart FROM pg_settings WHERE name = 'max_connections'")[
                    0
                ][0],
                what="pending_restart",
            )
            after = recommend_json("-d", cluster.dsn(), *args)
            mc = next(s for s in after["settings"] if s["name"] == "max_connections")
            assert mc["pending_restart"] is True and mc["restart"] is True
            pending = [f for f in after["findings"] if f["code"] == "pending_restart"]
            assert len(pending) == 1 and "max_connections" in pending[0]["message"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def postgres_check(version: str, folder: Path, block: str, show: str) -> subprocess.CompletedProcess[str]:
    """`postgres -C` on a configuration that includes `block`: loads and checks every line, starts nothing."""
    from tests.pgcluster import bin_dir

    data = folder / "data"
    data.mkdir(exist_ok=True)
    conf = write_readable(folder / "recommend.conf", block)
    main = write_readable(folder / "postgresql.conf", f"data_directory = '{data}'\ninclude = '{conf}'\n")
    return subprocess.run(
        _as_server_user(
            [str(bin_dir(version) / "postgres"), "-D", str(data), f"--config-file={main}", "-C", show]
        ),
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_large_machines_conf_blocks_load_in_postgres(version: str) -> None:
    folder = shared_dir()
    try:
        for workload, storage, ram, cpus in (
            ("web", "ssd", "128G", "32"),
            ("oltp", "nvme", "1T", "96"),
            ("dw", "san", "512G", "64"),
            ("mixed", "hdd", "64GiB", "16"),
            ("desktop", "ssd", "16GB", "4"),
        ):
            args = ["--ram", ram, "--cpus", cpus, "--workload", workload, "--storage", storage]
            args += ["--pg-version", version, "--app", "jobs=1000", "--app", "api=16x8"]
            block = recommend(*args, "-f", "conf")
            values = {s["name"]: s["value"] for s in recommend_json(*args)["settings"]}
            # postgres -C prints a value in the setting's base unit (8kB blocks, kB, or none)
            for name, unit in POSTGRES_C_UNITS.items():
                result = postgres_check(version, folder, block, name)
                assert result.returncode == 0, (workload, result.stderr)
                value = values[name] or ""
                expected = conf_bytes(value) if unit else int(value)
                assert int(result.stdout.strip()) * (unit or 1) == expected, (workload, name)
        # the check can fail: a value PostgreSQL refuses is reported
        broken = postgres_check(version, folder, block + "shared_buffers = 12XB\n", "shared_buffers")
        assert broken.returncode != 0
        assert "shared_buffers" in broken.stderr
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def pgbouncer(cluster: Cluster, block: str) -> Iterator[int]:
    """Debian's PgBouncer with the [pgbouncer] block, in front of `cluster`; yields its port."""
    if not PGBOUNCER.exists():
        pytest.fail("PgBouncer is not installed: apt-get install pgbouncer (scripts/test does)")
    folder = shared_dir()
    if os.geteuid() == 0:
        shutil.chown(folder, RUN_AS)
    port = free_port()
    ini = write_readable(
        folder / "pgbouncer.ini",
        f"[databases]\nappdb = host=127.0.0.1 port={cluster.port} dbname=postgres user=postgres "
        f"password={PASSWORD}\n\n{block}\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = any\nadmin_users = postgres\nlogfile = {folder}/pgbouncer.log\n",
    )
    proc = subprocess.Popen(
        _as_server_user([str(PGBOUNCER), str(ini)]), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:

        def listening() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                psycopg.connect(
                    f"host=127.0.0.1 port={port} dbname=pgbouncer user=postgres", connect_timeout=2
                ).close()
                return True
            except psycopg.OperationalError:
                return False

        wait_until(listening, 15, "pgbouncer to listen")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(folder, ignore_errors=True)


def pgbouncer_show(port: int, what: str) -> list[dict[str, str | None]]:
    """The admin console speaks the simple query protocol only."""
    with psycopg.connect(
        f"host=127.0.0.1 port={port} dbname=pgbouncer user=postgres", autocommit=True
    ) as conn:
        res = conn.pgconn.exec_(f"SHOW {what}".encode())
        assert res.status == pq.ExecStatus.TUPLES_OK, res.error_message
        names = [(res.fname(i) or b"").decode() for i in range(res.nfields)]
        return [
            {n: (v.decode() if (v := res.get_value(r, i)) is not None else None) for i, n in enumerate(names)}
            for r in range(res.ntuples)
        ]


def test_pgbouncer_block_runs_a_real_pgbouncer_and_bounds_the_server_side(pg: Cluster) -> None:
    args = ["--ram", "8G", "--cpus", "2", "--app", "training=300", "--app", "feature_service=4x8"]
    doc = recommend_json(*args)
    plan = doc["pools"]["pgbouncer"]
    assert plan is not None
    block = recommend(*args, "-f", "pgbouncer")
    with pgbouncer(pg, block) as port:
        config = {row["key"]: row["value"] for row in pgbouncer_show(port, "CONFIG")}
        for key in ("pool_mode", "default_pool_size", "reserve_pool_size", "reserve_pool_timeout",
                    "max_client_conn", "max_db_connections", "server_idle_timeout"):  # fmt: skip
            assert config[key] == str(plan[key]), key
        # more clients than the pool: PgBouncer never opens more than max_db_connections server backends
        clients = []
        try:
            for _ in range(plan["max_db_connections"] * 3):
                raw = pq.PGconn.connect(f"host=127.0.0.1 port={port} dbname=appdb user=postgres".encode())
                assert raw.status == pq.ConnStatus.OK, raw.get_error_message()
                raw.send_query(b"SELECT pg_sleep(1.5)")
                raw.flush()
                clients.append(raw)

            def sleeping() -> int:
                rows = pg.sql(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE query = 'SELECT pg_sleep(1.5)' AND state = 'active'"
                )
                return int(rows[0][0])

            wait_until(lambda: sleeping() >= plan["default_pool_size"], 10, "the pool to fill")
            peak = max(sleeping() for _ in range(10))
            assert plan["default_pool_size"] <= peak <= plan["max_db_connections"]
            waiting = sum(
                int(p["cl_waiting"] or 0) for p in pgbouncer_show(port, "POOLS") if p["database"] == "appdb"
            )
            assert waiting > 0  # the rest queue in PgBouncer, not in PostgreSQL
        finally:
            for raw in clients:
                raw.finish()
        # the SQLAlchemy side, through this PgBouncer: NullPool engines that connect
        engines = run_sqlalchemy(
            recommend(*args, "-f", "sqlalchemy"), f"postgresql+psycopg://postgres@127.0.0.1:{port}/appdb"
        )
        assert set(engines) == {"training_engine", "feature_service_engine"}
        for kind, answer in engines.values():
            assert (kind, answer) == ("NullPool", 1)


def run_sqlalchemy(text: str, url: str) -> dict[str, tuple[str, int]]:
    """Run the emitted create_engine() text; connect with every engine; return {name: (pool, SELECT 1)}."""
    from sqlalchemy import text as sql_text
    from sqlalchemy.engine import Engine

    namespace: dict[str, Any] = {"DATABASE_URL": url}
    exec(compile(text, "<pgdoctor sqlalchemy>", "exec"), namespace)
    out: dict[str, tuple[str, int]] = {}
    for name, engine in namespace.items():
        if isinstance(engine, Engine):
            with engine.connect() as conn:
                out[name] = (type(engine.pool).__name__, int(conn.execute(sql_text("SELECT 1")).scalar_one()))
            engine.dispose()
    return out


def test_sqlalchemy_arguments_direct_to_postgres(pg: Cluster) -> None:
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import QueuePool

    args = ["--ram", "8G", "--cpus", "4", "--app", "web=4x2", "--app", "cron=1"]
    doc = recommend_json(*args)
    assert doc["pools"]["pgbouncer"] is None
    text = recommend(*args, "-f", "sqlalchemy")
    url = f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{pg.port}/postgres"
    assert run_sqlalchemy(text, url) == {"web_engine": ("QueuePool", 1), "cron_engine": ("QueuePool", 1)}
    namespace: dict[str, Any] = {"DATABASE_URL": url}
    exec(compile(text, "<pgdoctor sqlalchemy>", "exec"), namespace)
    for app in doc["pools"]["apps"]:
        engine = namespace[f"{app['name']}_engine"]
        assert isinstance(engine, Engine) and isinstance(engine.pool, QueuePool)
        assert engine.pool.size() == app["pool_size"]
        assert engine.pool._max_overflow == app["max_overflow"]
        assert engine.pool._timeout == app["pool_timeout"]
        assert engine.pool._recycle == app["pool_recycle"]
        assert engine.pool._pre_ping is app["pool_pre_ping"]
        # every connection a process may hold opens for real
        held = [engine.connect() for _ in range(app["per_process"])]
        assert engine.pool.checkedout() == app["per_process"]
        for conn in held:
            conn.close()
        engine.dispose()


def test_live_comparison_reads_the_running_server(pg: Cluster, sessions: Sessions, tmp_path: Path) -> None:
    sessions.idle("app_a", 3)
    sessions.idle("app_b", 1)
    args = ["--ram", "2G", "--cpus", "4"]
    doc = recommend_json("-d", pg.dsn(), *args)
    assert doc["server"]["version_num"] == int(pg.sql("SHOW server_version_num")[0][0])
    assert doc["inputs"]["pg_version"] == int(pg.version)
    assert doc["inputs"]["apps_source"] == "observed"
    # 3 connections from one client address: one process using 3 at once (not 3 of one), never fewer
    pools = {a["name"]: (a["processes"], a["threads"]) for a in doc["pools"]["apps"]}
    assert pools == {"app_a": (1, 3), "app_b": (1, 1)}
    assert all(a["observed"] for a in doc["pools"]["apps"])
    by_name = {s["name"]: s for s in doc["settings"]}
    server = {r[0]: r[1:] for r in pg.sql("SELECT name, setting, unit, context FROM pg_settings")}
    for name, s in by_name.items():
        assert s["context"] == server[name][2], name
        assert s["restart"] is (server[name][2] == "postmaster")
    assert by_name["max_connections"]["current"] == server["max_connections"][0] == "100"
    assert by_name["shared_buffers"]["current"] == "64MB"  # the test cluster's setting
    assert by_name["shared_buffers"]["changes"] is True  # 2G of RAM: 512MB
    assert by_name["work_mem"]["restart"] is False
    codes = {(f["code"], f["severity"]) for f in doc["findings"]}
    # the test clusters run without fsync and full_page_writes: pgdoctor says how dangerous that is
    assert ("fsync_off", "critical") in codes
    assert ("full_page_writes_off", "critical") in codes
    assert ("idle_in_transaction_timeout_off", "warning") in codes
    assert ("apps_observed", "info") in codes
    cur = doc["current_memory"]
    assert cur["shared_buffers_bytes"] == 64 * 1024 * 1024
    work_mem = int(server["work_mem"][0]) * 1024
    assert cur["work_mem_bytes"] == work_mem
    parallel = int(server["max_parallel_workers"][0])
    assert cur["backends"] == 100 + parallel
    assert doc["memory"]["ram_bytes"] == 2 * 1024**3
    failing = run_cli("recommend", "-d", pg.dsn(), *args, "--fail-on", "critical", "-f", "plain")
    assert failing.returncode == 1
    assert "current" in failing.stdout.splitlines()[4]
    # the same from a snapshot
    snap = tmp_path / "snap.json"
    saved = run_cli("snapshot", "-d", pg.dsn(), "-o", str(snap))
    assert saved.returncode == 0, saved.stderr
    again = recommend_json("--snapshot", str(snap), *args)
    assert [(s["name"], s["current"], s["value"]) for s in again["settings"]] == [
        (s["name"], s["current"], s["value"]) for s in doc["settings"]
    ]
    assert again["pools"]["apps"] == doc["pools"]["apps"]


def test_without_ram_a_server_still_gets_pools_and_findings(pg: Cluster) -> None:
    doc = recommend_json("-d", pg.dsn(), "--app", "api=8x4", "--cpus", "4")
    by_name = {s["name"]: s for s in doc["settings"]}
    assert by_name["shared_buffers"]["value"] is None
    assert by_name["shared_buffers"]["current"] == "64MB"
    assert doc["memory"] is None
    assert doc["current_memory"]["ram_bytes"] is None
    assert doc["pools"]["apps"][0]["name"] == "api"
    conf = recommend("-d", pg.dsn(), "--app", "api=8x4", "-f", "conf")
    assert "# shared_buffers: needs --ram" in conf
    assert "\nshared_buffers =" not in conf


def test_unreachable_server_is_exit_3() -> None:
    result = run_cli(
        "recommend", "--ram", "8G", "-d", f"host=127.0.0.1 port={free_port()} user=x connect_timeout=2"
    )
    assert result.returncode == 3
    assert result.stderr.startswith("error: cannot connect")
