"""`recommend` against the incidents' topologies, run for real, and its pools applied to the same
applications under the same load.

The incident, all at once on one server (max_connections 100, 97 usable):
- GPUStack's shape: 3 processes of an async SQLAlchemy app (asyncpg) at the default pool 5 + 10, 25
  requests at once in each holding their session 0.5 s: 45 connections, every one busy;
- a leak: 25 connections of one application opened, used once and left idle;
- Django with CONN_MAX_AGE = None: one connection per worker thread kept for good, idle;
- the Flask app whose request holds its transaction through a slow call (2 s here, 10 s in the incident).

One plain snapshot and one `snapshot --sample` are taken of it; `recommend` and `connections` read both,
and one live `recommend --sample` runs beside. Then every application is stopped and started again with
the pools `recommend --sample` gave (`-f json`'s create_engine values, `-f django`'s keys), all at once,
under the same load, with a pool timeout of 3 s (instead of 30; Django's as emitted) so that a pool too
small shows as errors within a few seconds: no request fails, and the server's client connections stay
within its usable slots.
The Flask app is also run behind a real PgBouncer with the `[pgbouncer]` pool recommend sized from the
sample: no client waits out PgBouncer's query_wait_timeout. Counts and errors are asserted, never timings.
(The pool the earlier recommend gave GPUStack, pool_size=1, max_overflow=1, fails 27 of about 53 requests
per process in the same applied run.)
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import pgbouncer
from tests.conftest import ROOT, run_cli
from tests.incidents import Sessions, ensure_database, ensure_role, wait_until
from tests.pgcluster import PASSWORD, Cluster

pytestmark = pytest.mark.server

PROCESSES = 3
TASKS = 25  # per process: more than SQLAlchemy's default 5 + 10
HOLD_S = 0.5
LEAKED = 25  # over a quarter of the 97 usable slots: `connections` calls it idle_connections
DJANGO_THREADS = 8
FLASK_THREADS = 4
FLASK_SLEEP_S = 2.0
RUN_S = 120.0  # every application ends by itself after this, whatever happens to the test
APPLIED_S = 4.0  # the applied run's load
BOUNCER_RUN_S = 8.0  # the Flask app behind PgBouncer: long enough for a 3 s sample of it
APPLIED_TIMEOUT_S = 3.0  # pool timeout of the applied run: a pool too small fails within the run
HARDWARE = ("--cpus", "2", "--ram", "4G", "--max-connections", "100")  # the test server's max_connections
BOUNCER_HARDWARE = ("--cpus", "1", "--ram", "4G", "--max-connections", "100")  # a CPU pool of 2


@dataclass
class Run:
    observed: dict[str, Any]  # recommend --snapshot plain.json
    sampled: dict[str, Any]  # recommend --snapshot sampled.json
    live: dict[str, Any]  # recommend -d … --sample
    with_bouncer: dict[str, Any]  # recommend --snapshot sampled.json --pgbouncer
    connections: dict[str, Any]  # connections --snapshot plain.json
    connections_sample: dict[str, Any]  # connections --snapshot sampled.json
    django: str  # recommend --snapshot sampled.json -f django
    usable: int


def _start(args: list[str], stdout: int | None = subprocess.DEVNULL) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True
    )


def _count(pg: Cluster, where: str) -> int:
    rows = pg.sql(f"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND {where}")
    return int(rows[0][0])


def _stop(apps: list[subprocess.Popen[str]]) -> None:
    for a in apps:
        if a.poll() is None:
            a.terminate()
    for a in apps:
        try:
            a.wait(timeout=10)
        except subprocess.TimeoutExpired:
            a.kill()
            a.wait()


def _json(*args: str) -> dict[str, Any]:
    result = run_cli(*args, "-f", "json", timeout=120)
    assert result.returncode in (0, 1), result.stderr
    return dict(json.loads(result.stdout))


def _apps(pg: Cluster, url: str) -> list[subprocess.Popen[str]]:
    apps = [
        _start(["tests.apps.async_pool", f"postgresql+asyncpg://{url}/gpustack", "gpustack", str(TASKS),
                str(HOLD_S), str(RUN_S)])
        for _ in range(PROCESSES)
    ]  # fmt: skip
    apps.append(
        _start(["tests.apps.flask_app", f"postgresql+psycopg://{url}/flaskapp", "flaskapp",
                str(FLASK_THREADS), str(FLASK_SLEEP_S), str(RUN_S)])
    )  # fmt: skip
    apps.append(
        _start(["tests.apps.django_app", str(pg.socket_dir), str(pg.port), "django_user", "djangoapp",
                str(DJANGO_THREADS), str(RUN_S)])
    )  # fmt: skip
    return apps


@pytest.fixture(scope="module")
def run(pg: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Run:
    for db in ("gpustack", "flaskapp", "djangoapp"):
        ensure_database(pg, db)
    ensure_role(pg, "django_user")
    url = f"postgres:{PASSWORD}@127.0.0.1:{pg.port}"
    leak = Sessions(pg)
    apps = _apps(pg, url)
    try:
        leak.idle("leaky", LEAKED)

        def started() -> bool:
            dead = [a for a in apps if a.poll() is not None]
            assert not dead, dead[0].stderr.read() if dead[0].stderr else "an application ended"
            return (
                _count(pg, "application_name = 'gpustack'") == PROCESSES * 15
                and _count(pg, "application_name = 'flaskapp' AND state = 'idle in transaction'")
                >= FLASK_THREADS - 1
                and _count(pg, "usename = 'django_user'") == DJANGO_THREADS
            )

        wait_until(started, timeout=90, what="the applications under load")
        tmp = tmp_path_factory.mktemp("recommend-incidents")
        plain, sampled = tmp / "plain.json", tmp / "sampled.json"
        result = run_cli("snapshot", "-d", pg.dsn(), "-o", str(plain))
        assert result.returncode == 0, result.stderr
        live: dict[str, Any] = {}

        def live_recommend() -> None:  # beside the stored sample: the live path of --sample
            live.update(_json("recommend", "-d", pg.dsn(), "--sample", "2s", *HARDWARE))

        beside = threading.Thread(target=live_recommend)
        beside.start()
        result = run_cli("snapshot", "-d", pg.dsn(), "--sample", "4s", "-o", str(sampled), timeout=120)
        beside.join(120)
        assert result.returncode == 0, result.stderr
    finally:
        _stop(apps)
        leak.close()
        pg.terminate_others()
    usable = int(pg.sql("SELECT current_setting('max_connections')::int - 3")[0][0])
    django = run_cli("recommend", "--snapshot", str(sampled), *HARDWARE, "-f", "django")
    assert django.returncode == 0, django.stderr
    return Run(
        observed=_json("recommend", "--snapshot", str(plain), *HARDWARE),
        sampled=_json("recommend", "--snapshot", str(sampled), *HARDWARE),
        live=live,
        with_bouncer=_json("recommend", "--snapshot", str(sampled), "--pgbouncer", *BOUNCER_HARDWARE),
        connections=_json("connections", "--snapshot", str(plain)),
        connections_sample=_json("connections", "--snapshot", str(sampled)),
        django=django.stdout,
        usable=usable,
    )


def demand(doc: dict[str, Any], name: str) -> dict[str, Any]:
    (a,) = [a for a in doc["demand"]["apps"] if a["name"] == name]
    return dict(a)


def pool(doc: dict[str, Any], name: str) -> dict[str, Any]:
    (a,) = [a for a in doc["pools"]["apps"] if a["name"] == name]
    return dict(a)


def codes(doc: dict[str, Any], *wanted: str) -> list[tuple[str, str, str, tuple[int, ...]]]:
    return sorted(
        (f["code"], f["subject"], f["message"], tuple(f.get("pids", ())))
        for f in doc["findings"]
        if f["code"] in wanted
    )


def test_observed_pools_never_below_what_was_in_use(run: Run) -> None:
    """One read, no --app: 45 connections from one address read as 3 processes x 15 (not 45 processes of
    one thread), pools of at least 15 per process, and the assumption said with a request for --app."""
    doc = run.observed
    assert doc["demand"]["source"] == "observed"
    gpu = demand(doc, "gpustack")
    assert (gpu["seen"], gpu["peak"], gpu["processes"], gpu["per_process"]) == (45, 45, 3, 15)
    p = pool(doc, "gpustack")
    assert p["processes"] == 3
    assert p["pool_size"] >= 15 and p["total"] >= 45
    (assumed,) = [f for f in doc["findings"] if f["code"] == "apps_observed"]
    assert "3 process(es) x 15" in assumed["message"] and "--app" in assumed["advice"]
    django = demand(doc, "(none)")
    assert django["peak"] == DJANGO_THREADS and pool(doc, "(none)")["total"] >= DJANGO_THREADS


def test_a_leak_is_not_demand_and_the_findings_agree(run: Run) -> None:
    doc = run.observed
    leaky = demand(doc, "leaky")
    assert (leaky["seen"], leaky["not_demand"], leaky["peak"]) == (LEAKED, LEAKED, 0)
    assert pool(doc, "leaky")["total"] <= 2  # one connection (and its overflow), not the leak's 25
    # max_connections is not grown for it: the running 100 fits what is used without the leak
    assert doc["pools"]["fits"] is True and doc["pools"]["pgbouncer"] is None
    assert f"{LEAKED} connection(s) seen leaked" in doc["pools"]["pgbouncer_reason"]
    wanted = ("capacity", "idle_in_transaction", "idle_connections", "app_pool_saturated_likely")
    mine = codes(doc, *wanted)
    assert mine == codes(run.connections, *wanted)
    assert any(c[0] == "idle_connections" and c[1] == "leaky" for c in mine)


def test_sample_sizes_from_littles_law(run: Run) -> None:
    doc = run.sampled
    d = doc["demand"]
    assert d["source"] == "sample"
    gpu = demand(doc, "gpustack")
    assert gpu["processes"] == PROCESSES
    assert gpu["seen"] == 45 and gpu["xacts_per_s"] > 0 and gpu["xact_s"] > 0
    # L = lambda x W, needed = L x 1.5 (never below what was held and used)
    assert gpu["needed"] == max(gpu["peak"], math.ceil(round(gpu["busy"] * 1.5, 6)))
    assert gpu["needed"] > 45  # a saturated pool: its ceiling is a floor of the demand
    assert gpu["needed_fixed"] < gpu["needed"]  # the session held through the "inference"
    flask = demand(doc, "flaskapp")
    assert flask["idle_share"] >= 0.5 and flask["needed_fixed"] < flask["needed"]
    # held idle and unused: not demand
    django = demand(doc, "(none)")
    assert django["not_demand"] >= DJANGO_THREADS - 1
    assert demand(doc, "leaky")["not_demand"] >= LEAKED - 1
    assert doc["pools"]["fits"] is True and doc["pools"]["client_total"] <= run.usable
    p = pool(doc, "gpustack")
    assert p["pool_size"] * PROCESSES >= gpu["needed"] > 45


def test_sample_findings_are_connections_own(run: Run) -> None:
    wanted = ("app_pool_saturated", "slow_work_in_transaction", "app_connections_held")
    mine = codes(run.sampled, *wanted)
    assert mine == codes(run.connections_sample, *wanted)
    assert {(c[0], c[1]) for c in mine} >= {
        ("app_pool_saturated", "gpustack @ 127.0.0.1"),
        ("slow_work_in_transaction", "flaskapp @ 127.0.0.1"),
        ("app_connections_held", "(no application_name) django_user @ local socket"),
    }


def test_live_sample(run: Run) -> None:
    assert run.live["demand"]["source"] == "sample"
    assert demand(run.live, "gpustack")["seen"] == 45


def test_pgbouncer_pool_sized_for_the_measured_transactions(run: Run) -> None:
    doc = run.with_bouncer
    b = doc["pools"]["pgbouncer"]
    d = doc["demand"]
    assert doc["pools"]["cpu_pool"] == 2
    assert b["default_pool_size"] >= d["server_needed"] > 2
    assert d["busiest_database"] == "gpustack"
    assert b["server_total"] <= doc["pools"]["server_budget"]


def _result(out: str) -> tuple[int, int]:
    m = re.search(r"requests=(\d+) errors=(\d+)", out)
    assert m, out
    return int(m.group(1)), int(m.group(2))


def test_recommended_pools_applied_carry_the_same_load(pg: Cluster, run: Run) -> None:
    url = f"postgres:{PASSWORD}@127.0.0.1:{pg.port}"
    gpu, flask = pool(run.sampled, "gpustack"), pool(run.sampled, "flaskapp")
    assert gpu["poolclass"] == flask["poolclass"] == "QueuePool"
    namespace: dict[str, Any] = {}
    exec(run.django, namespace)  # the emitted settings, as a settings.py would run them
    django_keys = namespace["NONE_DATABASE"]
    assert django_keys["OPTIONS"]["pool"]["max_size"] == pool(run.sampled, "(none)")["per_process"]
    assert django_keys["CONN_MAX_AGE"] == 0 and django_keys["CONN_HEALTH_CHECKS"] is True
    apps = [
        _start(["tests.apps.async_pool", f"postgresql+asyncpg://{url}/gpustack", "gpustack", str(TASKS),
                str(HOLD_S), str(APPLIED_S), str(gpu["pool_size"]), str(gpu["max_overflow"]),
                str(APPLIED_TIMEOUT_S)], stdout=subprocess.PIPE)
        for _ in range(PROCESSES)
    ]  # fmt: skip
    apps.append(
        _start(["tests.apps.flask_app", f"postgresql+psycopg://{url}/flaskapp", "flaskapp",
                str(FLASK_THREADS), str(FLASK_SLEEP_S), str(APPLIED_S), str(flask["pool_size"]),
                str(flask["max_overflow"]), str(APPLIED_TIMEOUT_S)], stdout=subprocess.PIPE)
    )  # fmt: skip
    apps.append(
        _start(["tests.apps.django_app", str(pg.socket_dir), str(pg.port), "django_user", "djangoapp",
                str(DJANGO_THREADS), str(APPLIED_S), json.dumps(django_keys)], stdout=subprocess.PIPE)
    )  # fmt: skip
    peak = 0
    try:

        def ended() -> bool:
            nonlocal peak
            peak = max(peak, _count(pg, "datname IN ('gpustack', 'flaskapp', 'djangoapp')"))
            return all(a.poll() is not None for a in apps)

        wait_until(ended, timeout=180, what="the applications with the recommended pools")
        outs = [a.communicate() for a in apps]
    finally:
        _stop(apps)
        pg.terminate_others()
    for (out, err), a in zip(outs, apps, strict=True):
        assert a.returncode == 0, err
        requests, errors = _result(out)
        assert requests > 0 and errors == 0, (out, err[-2000:])
    assert 0 < peak <= run.usable


@pytest.mark.skipif(not pgbouncer.available(), reason="PgBouncer not installed")
def test_flask_behind_the_recommended_pgbouncer(pg: Cluster, run: Run) -> None:
    """The [pgbouncer] pool sized from the sample, in front of the Flask app with its 2 s transactions:
    with PgBouncer's query_wait_timeout at 3 s, a pool sized for the CPUs only (2 here) would leave the
    4 threads' clients waiting out the timeout; the recommended one serves every request. Sampled through
    the pooler meanwhile, the transactions idling in the middle get the same diagnosis from `recommend
    --sample --pgbouncer-dsn` as from `connections --sample`: slow_work_in_transaction."""
    b = run.with_bouncer["pools"]["pgbouncer"]
    flask = demand(run.with_bouncer, "flaskapp")
    assert b["default_pool_size"] >= flask["needed"] >= FLASK_THREADS
    settings = {
        "reserve_pool_size": b["reserve_pool_size"],
        "query_wait_timeout": int(APPLIED_TIMEOUT_S),
        "max_db_connections": b["max_db_connections"],
        "max_client_conn": b["max_client_conn"],
    }
    with pgbouncer.running_pgbouncer(pg, pool_size=b["default_pool_size"], settings=settings) as bouncer:
        app = _start(
            ["tests.apps.flask_app", f"postgresql+psycopg://postgres@127.0.0.1:{bouncer.port}/flaskapp",
             "flaskapp", str(FLASK_THREADS), str(FLASK_SLEEP_S), str(BOUNCER_RUN_S), "null"],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        docs: dict[str, dict[str, Any]] = {}
        try:
            wait_until(
                lambda: _count(pg, "application_name = 'flaskapp' AND state = 'idle in transaction'") >= 2,
                timeout=60,
                what="the Flask app's transactions through PgBouncer",
            )
            pooler = bouncer.dsn(dbname="pgbouncer")
            rec_args = ("--sample", "3s", "--pgbouncer-dsn", pooler, *BOUNCER_HARDWARE)
            samplers = [
                threading.Thread(
                    target=lambda: docs.update(rec=_json("recommend", "-d", pg.dsn(), *rec_args))
                ),
                threading.Thread(
                    target=lambda: docs.update(conn=_json("connections", "-d", pg.dsn(), "--sample", "3s"))
                ),
            ]
            for t in samplers:
                t.start()
            for t in samplers:
                t.join(120)
            out, err = app.communicate(timeout=180)
        finally:
            _stop([app])
    assert app.returncode == 0, err
    requests, errors = _result(out)
    assert requests > 0 and errors == 0, (out, err[-2000:])
    slow = [
        (f["code"], f["subject"]) for f in docs["conn"]["findings"] if f["code"] == "slow_work_in_transaction"
    ]
    assert slow and [s for s in slow if s[1].startswith("flaskapp")] == slow
    mine = [
        (f["code"], f["subject"]) for f in docs["rec"]["findings"] if f["code"] == "slow_work_in_transaction"
    ]
    assert mine == slow
    assert docs["rec"]["pgbouncer_current"] is not None  # compared with the running PgBouncer


def test_emitted_async_engine_connects(pg: Cluster, tmp_path: Path) -> None:
    """-f sqlalchemy for an async application: create_async_engine, run as written, connects."""
    result = run_cli("recommend", *HARDWARE, "--app", "gpustack=3xasync:20", "-f", "sqlalchemy")
    assert result.returncode == 0, result.stderr
    assert "create_async_engine(DATABASE_URL" in result.stdout
    script = tmp_path / "engine.py"
    script.write_text(
        "import asyncio, sys\nfrom sqlalchemy import text\n"
        f"DATABASE_URL = sys.argv[1]\n{result.stdout}\n"
        "async def main():\n"
        "    async with gpustack_engine.connect() as c:\n"
        "        print((await c.execute(text('SELECT 41 + 1'))).scalar())\n"
        "    await gpustack_engine.dispose()\n"
        "asyncio.run(main())\n"
    )
    url = f"postgresql+asyncpg://postgres:{PASSWORD}@127.0.0.1:{pg.port}/postgres"
    done = subprocess.run(
        [sys.executable, str(script), url], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"
