"""The pool invariants, over random topologies (hypothesis): app pools -> PgBouncer -> PostgreSQL."""

from __future__ import annotations

import ast

from hypothesis import given, settings
from hypothesis import strategies as st

from pgdoctor.analyze.sizing import pools
from pgdoctor.analyze.sizing.pools import AppSpec, PoolPlan
from pgdoctor.render.recommend_text import django_block, django_settings, engine_kwargs, sqlalchemy_block

app_specs = st.lists(
    st.builds(
        AppSpec,
        name=st.text("abcdefghijklmnopqrstuvwxyz_-0123456789", min_size=1, max_size=12),
        processes=st.integers(1, 5000),
        threads=st.integers(1, 32),
        kind=st.sampled_from(["threads", "async"]),
    ),
    max_size=8,
    unique_by=lambda a: a.name,
)
topologies = st.fixed_dictionaries(
    {
        "apps": app_specs,
        "cpus": st.one_of(st.none(), st.integers(1, 256)),
        "storage": st.sampled_from(["hdd", "ssd", "nvme", "san"]),
        "workload": st.sampled_from(["web", "oltp", "dw", "mixed", "desktop"]),
        "max_connections": st.one_of(st.none(), st.integers(5, 10_000)),
        "pgbouncer": st.sampled_from([None, True, False]),
        "databases": st.integers(1, 6),
        "reserved_connections": st.sampled_from([0, 0, 2]),
        "server_needed": st.one_of(st.none(), st.integers(1, 500)),
    }
)


def check_common(p: PoolPlan) -> None:
    assert p.usable == max(p.max_connections - p.superuser_reserved - p.reserved_connections, 0)
    assert p.client_total == sum(a.total for a in p.apps)
    for a in p.apps:
        assert a.total == a.processes * a.per_process
        if a.poolclass == "QueuePool":
            assert a.pool_size is not None and a.max_overflow is not None
            assert a.pool_size >= 1 and a.max_overflow >= 0
            assert a.per_process == a.pool_size + a.max_overflow
        else:
            assert a.poolclass == "NullPool"
            assert p.pgbouncer is not None  # NullPool only behind PgBouncer
            assert a.per_process == a.threads
        assert a.per_process >= a.threads  # every thread can get a connection without waiting
        if a.poolclass == "QueuePool":
            assert a.pool_size is not None and a.pool_size >= a.threads  # never below the concurrency
    assert p.work_mem_connections <= p.max_connections


@settings(max_examples=400, deadline=None)
@given(topologies)
def test_pool_invariants(t: dict[str, object]) -> None:
    p = pools.plan(**t)  # type: ignore[arg-type]
    check_common(p)
    if p.pgbouncer is not None:
        b = p.pgbouncer
        # every client connection the applications can open fits max_client_conn
        assert sum(a.processes * a.per_process for a in p.apps) <= b.max_client_conn
        assert b.default_pool_size + b.reserve_pool_size <= b.max_db_connections
        if p.fits:
            # PgBouncer's server side fits the usable slots
            assert b.server_total == b.databases * b.max_db_connections <= p.usable
            assert b.default_pool_size >= 1
        # sized for the CPUs (or the measured transactions), never for the clients
        cpu = pools.cpu_pool(p.cpus, t["storage"])  # type: ignore[arg-type]
        needed = t["server_needed"] or 0
        assert b.default_pool_size <= max(cpu, needed)  # type: ignore[call-overload]
        if p.fits and t["max_connections"] is None:
            assert b.default_pool_size >= needed  # type: ignore[operator]
        assert b.pool_mode == "transaction"
    elif p.fits:
        assert (
            sum(a.processes * (a.pool_size or 0) + a.processes * (a.max_overflow or 0) for a in p.apps)
            <= p.usable
        )
    if t["pgbouncer"] is None:
        # left to pgdoctor, the plan always fits: PgBouncer is advised when direct connections do not
        assert p.fits or t["max_connections"] is not None
        if t["max_connections"] is None:
            assert p.fits


@settings(max_examples=200, deadline=None)
@given(app_specs, app_specs, st.integers(1, 128), st.sampled_from(["hdd", "ssd", "nvme", "san"]))
def test_server_pool_depends_on_cpus_not_on_clients(
    a: list[AppSpec], b: list[AppSpec], cpus: int, storage: str
) -> None:
    one = pools.plan(a, cpus=cpus, storage=storage, pgbouncer=True)
    two = pools.plan(b, cpus=cpus, storage=storage, pgbouncer=True)
    assert one.pgbouncer is not None and two.pgbouncer is not None
    assert (
        one.pgbouncer.default_pool_size
        == two.pgbouncer.default_pool_size
        == cpus * 2 + pools.SPINDLES[storage]
    )
    assert one.max_connections == two.max_connections
    assert one.pgbouncer.max_db_connections == two.pgbouncer.max_db_connections


@settings(max_examples=200, deadline=None)
@given(topologies)
def test_sqlalchemy_text_is_python_with_the_planned_arguments(t: dict[str, object]) -> None:
    p = pools.plan(**t)  # type: ignore[arg-type]
    text = sqlalchemy_block(["header"], p.apps, p.pgbouncer is not None)
    tree = ast.parse(text)
    engines = ("create_engine", "create_async_engine")
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") in engines]
    # an async application gets create_async_engine, a threaded one create_engine
    assert [getattr(c.func, "id", "") for c in calls] == [
        "create_async_engine" if a.kind == "async" else "create_engine" for a in p.apps
    ]
    assert len(calls) == len(p.apps)
    targets = [n.targets[0].id for n in tree.body if isinstance(n, ast.Assign)]  # type: ignore[attr-defined]
    assert len(set(targets)) == len(targets)  # one variable per application
    for call, app in zip(calls, p.apps, strict=True):
        kwargs = {
            k.arg: (k.value.id if isinstance(k.value, ast.Name) else ast.literal_eval(k.value))
            for k in call.keywords
        }
        assert kwargs == engine_kwargs(app)


def test_the_issue_incident_gets_pgbouncer() -> None:
    """50 training jobs x 20 worker processes with a 5+10 pool each, against max_connections = 200."""
    apps = [AppSpec("training", 50 * 20)]
    direct = pools.plan(apps, cpus=16, max_connections=200, pgbouncer=False)
    assert not direct.fits
    assert [f.code for f in direct.findings] == ["pools_exceed_server"]
    advised = pools.plan(apps, cpus=16, max_connections=200)
    assert advised.fits and advised.pgbouncer is not None
    assert advised.pgbouncer.max_client_conn >= 1000
    assert advised.pgbouncer.server_total <= advised.usable
    assert advised.pgbouncer.default_pool_size == 32


def test_small_topologies_go_direct_with_bounded_pools() -> None:
    p = pools.plan([AppSpec("web", 8, 4), AppSpec("worker", 4)], cpus=8)
    assert p.pgbouncer is None and p.fits
    assert p.max_connections == 200
    web = p.apps[0]
    assert (web.poolclass, web.pool_size) == ("QueuePool", 4)
    assert web.max_overflow == 4  # bursts may double a process's pool, capped by what is left
    assert p.client_total <= p.usable


def test_cpus_not_given_is_said() -> None:
    p = pools.plan([AppSpec("a", 500)], cpus=None)
    assert p.cpus == pools.ASSUMED_CPUS and p.cpus_assumed
    assert [f.code for f in p.findings] == ["cpus_assumed"]


@settings(max_examples=200, deadline=None)
@given(topologies)
def test_django_text_is_python_with_the_planned_pool(t: dict[str, object]) -> None:
    """-f django: one dict per application, whose pool allows what the plan allows per process."""
    p = pools.plan(**t)  # type: ignore[arg-type]
    namespace: dict[str, object] = {}
    exec(django_block(["header"], p.apps, p.pgbouncer is not None), namespace)
    entries = [v for k, v in namespace.items() if k.endswith("_DATABASE")]
    assert len(entries) == len(p.apps)
    for entry, app in zip(entries, p.apps, strict=True):
        assert entry == django_settings(app)
        assert isinstance(entry, dict) and entry["CONN_MAX_AGE"] == 0 and entry["CONN_HEALTH_CHECKS"] is True
        if app.poolclass == "QueuePool":
            pool = entry["OPTIONS"]["pool"]
            assert app.pool_size is not None and app.pool_size >= app.threads
            assert pool["max_size"] == app.per_process >= pool["min_size"] == app.pool_size
        else:
            assert "OPTIONS" not in entry and entry["DISABLE_SERVER_SIDE_CURSORS"] is True


def test_measured_transactions_raise_the_pgbouncer_pool() -> None:
    """12 server connections (the CPU pool) against 10 s transactions queued clients: a sample that
    measured 30 connections busy in transactions sizes the pool for them, and says why."""
    apps = [AppSpec("flask", 1, 30)]
    cpu_only = pools.plan(apps, cpus=6, pgbouncer=True)
    measured = pools.plan(apps, cpus=6, pgbouncer=True, server_needed=45, server_needed_basis="measured")
    assert cpu_only.pgbouncer is not None and measured.pgbouncer is not None
    assert cpu_only.pgbouncer.default_pool_size == 12
    assert measured.pgbouncer.default_pool_size == 45
    assert "raised to 45: measured" in measured.pgbouncer.reasons["default_pool_size"]
    assert measured.pgbouncer.server_total <= measured.usable
