"""`pgdoctor recommend`'s ready-to-paste text: a postgresql.conf block, a pgbouncer.ini [pgbouncer] block,
create_engine() calls."""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterable

from pgdoctor.analyze.sizing.pools import AppPool, PgBouncerPlan, pgbouncer_values
from pgdoctor.render.document import safe

_PLAIN = re.compile(r"^[A-Za-z0-9_.\-]+$")


def conf_value(value: str) -> str:
    """Unquoted when postgresql.conf reads it as is (32GB, 0.9, try), else single-quoted."""
    return value if _PLAIN.match(value) else "'" + value.replace("'", "''") + "'"


def conf_block(header: Iterable[str], settings: Iterable[tuple[str, str | None, str, bool]]) -> str:
    """settings: (name, value, reason, per_role). Per-role guidance and unknown values become comments."""
    lines = [f"# {h}" for h in header]
    for name, value, reason, per_role in settings:
        if value is None:
            lines.append(f"# {name}: {reason}")
        elif per_role:
            lines.append(f"# {name}: {reason}")
            if value != "0":
                lines.append(f"#   ALTER ROLE <app_role> SET {name} = '{value}';")
        else:
            lines.append(f"{name} = {conf_value(value)}  # {reason}")
    return "\n".join(map(safe, lines)) + "\n"  # a newline in a name must not end a comment


def pgbouncer_block(header: Iterable[str], plan: PgBouncerPlan) -> str:
    """The [pgbouncer] section; PgBouncer's ini takes comments on lines of their own only."""
    lines = [f"; {h}" for h in header]
    lines.append("[pgbouncer]")
    for name, value in pgbouncer_values(plan).items():
        lines.append(f"; {plan.reasons[name]}")
        lines.append(f"{name} = {value}")
    return "\n".join(map(safe, lines)) + "\n"  # a newline in a name must not end a comment


def engine_name(app: str) -> str:
    """A Python identifier for an application's engine variable."""
    ident = re.sub(r"\W+", "_", app).strip("_").lower() or "app"
    if ident[0].isdigit() or keyword.iskeyword(ident):
        ident = f"app_{ident}"
    return f"{ident}_engine"


def engine_kwargs(app: AppPool) -> dict[str, object]:
    """The create_engine keyword arguments for one application (poolclass as a class name)."""
    if app.poolclass == "NullPool":
        return {"poolclass": "NullPool"}
    return {
        "pool_size": app.pool_size,
        "max_overflow": app.max_overflow,
        "pool_timeout": app.pool_timeout,
        "pool_recycle": app.pool_recycle,
        "pool_pre_ping": app.pool_pre_ping,
    }


def sqlalchemy_block(header: Iterable[str], apps: list[AppPool], behind_pgbouncer: bool) -> str:
    lines = [f"# {h}" for h in header]
    target = "PgBouncer" if behind_pgbouncer else "PostgreSQL"
    lines.append(f"# DATABASE_URL points at {target}.")
    if any(a.kind != "async" for a in apps) or not apps:
        lines.append("from sqlalchemy import create_engine")
    if any(a.kind == "async" for a in apps):
        lines.append("from sqlalchemy.ext.asyncio import create_async_engine")
        lines.append("# async engines: DATABASE_URL with an async driver (postgresql+asyncpg:// or +psycopg)")
    if any(a.poolclass == "NullPool" for a in apps):
        lines.append("from sqlalchemy.pool import NullPool")
    if behind_pgbouncer:
        lines += [
            "# PgBouncer before 1.21 (no max_prepared_statements) in transaction mode: turn off the driver's",
            "# prepared statements: psycopg 3 connect_args={'prepare_threshold': None}, asyncpg",
            "# connect_args={'statement_cache_size': 0}.",
        ]
    if not apps:
        lines.append("# no applications given (--app NAME=PROCESSES[xTHREADS])")
    used: set[str] = set()
    for app in apps:
        var = engine_name(app.name)
        n = 2
        while var in used:
            var = f"{engine_name(app.name)[: -len('_engine')]}_{n}_engine"
            n += 1
        used.add(var)
        lines.append("")
        unit = "task(s) using the database" if app.kind == "async" else "thread(s)"
        lines.append(f"# {app.name}: {app.processes} process(es) x {app.threads} {unit}; {app.reason}")
        args = ", ".join(
            f"{k}={v}" if k == "poolclass" else f"{k}={v!r}" for k, v in engine_kwargs(app).items()
        )
        create = "create_async_engine" if app.kind == "async" else "create_engine"
        lines.append(f"{var} = {create}(DATABASE_URL, {args})")
    return "\n".join(map(safe, lines)) + "\n"  # a newline in a name must not end a comment


def django_settings(app: AppPool) -> dict[str, object]:
    """The connection handling keys of a Django DATABASES entry for one application (Django 5.1+ with
    psycopg 3 and psycopg_pool for the pool; behind PgBouncer no pool and no server-side cursors)."""
    if app.poolclass == "NullPool":
        return {"CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": True, "DISABLE_SERVER_SIDE_CURSORS": True}
    assert app.pool_size is not None
    return {
        "CONN_MAX_AGE": 0,  # Django's pool needs it: connections go back to the pool after each request
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {
            "pool": {"min_size": app.pool_size, "max_size": app.per_process, "timeout": app.pool_timeout}
        },
    }


def django_block(header: Iterable[str], apps: list[AppPool], behind_pgbouncer: bool) -> str:
    """A DATABASES entry's connection keys per application, as Python for settings.py."""
    lines = [f"# {h}" for h in header]
    target = "PgBouncer (transaction mode)" if behind_pgbouncer else "PostgreSQL"
    lines.append(f"# settings.py: merge into DATABASES['default'] (HOST/PORT of {target}), e.g.")
    lines.append("#   DATABASES['default'].update(<APP>_DATABASE)")
    if not behind_pgbouncer:
        lines.append(
            "# The pool needs Django 5.1+, psycopg 3 and psycopg_pool (pip install 'psycopg[pool]');"
        )
        lines.append(
            "# max_size per process: the threads that use the database at once, with room for bursts."
        )
    if not apps:
        lines.append("# no applications given (--app NAME=PROCESSES[xTHREADS])")
    used: set[str] = set()
    for app in apps:
        var = engine_name(app.name)[: -len("_engine")].upper() + "_DATABASE"
        n = 2
        while var in used:
            var = engine_name(app.name)[: -len("_engine")].upper() + f"_{n}_DATABASE"
            n += 1
        used.add(var)
        lines.append("")
        lines.append(f"# {app.name}: {app.processes} process(es) x {app.threads} thread(s); {app.reason}")
        lines.append(f"{var} = {django_settings(app)!r}")
    return "\n".join(map(safe, lines)) + "\n"  # a newline in a name must not end a comment
