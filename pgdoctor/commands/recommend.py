"""`pgdoctor recommend --ram 128G`: settings and pool sizes that fit together."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from pgdoctor.analyze.choices import Storage, Workload
from pgdoctor.errors import ExitCode, PgDoctorError
from pgdoctor.options import (
    DsnOpt,
    FailOn,
    FailOnOpt,
    SnapshotOpt,
    TimeoutOpt,
    emit_report,
    exit_code,
    obtain_pair,
)
from pgdoctor.render.formats import Format

if TYPE_CHECKING:
    from pathlib import Path

    from pgdoctor.analyze.sample import SampleReport
    from pgdoctor.analyze.sizing.pools import AppSpec


class RecommendFormat(StrEnum):
    AUTO = "auto"
    TABLE = "table"
    PLAIN = "plain"
    MARKDOWN = "markdown"
    CSV = "csv"
    JSON = "json"
    OPENMETRICS = "openmetrics"
    CONF = "conf"
    PGBOUNCER = "pgbouncer"
    SQLALCHEMY = "sqlalchemy"
    DJANGO = "django"


_APP = re.compile(
    r"^(?P<name>[^=]+)=(?P<processes>\d{1,9})(?:[x*](?:(?P<threads>\d{1,9})|async:(?P<tasks>\d{1,9})))?$",
    re.IGNORECASE,
)


def parse_apps(values: list[str]) -> list[AppSpec]:
    """--app NAME=PROCESSES, NAME=PROCESSESxTHREADS (threads using the database at once per process) or
    NAME=PROCESSESxasync:TASKS (an asyncio application: tasks using the database at once per process).

    >>> [(a.processes, a.threads, a.kind) for a in parse_apps(["web=16x8", "gpustack=3xasync:20", "job=4"])]
    [(16, 8, 'threads'), (3, 20, 'async'), (4, 1, 'threads')]
    """
    from pgdoctor.analyze.sizing.pools import AppSpec

    apps: list[AppSpec] = []
    for value in values:
        m = _APP.match(value.strip())
        if not m or not m.group("name").strip():
            raise PgDoctorError(
                f"--app {value[:60]!r}: write NAME=PROCESSES, NAME=PROCESSESxTHREADS or "
                "NAME=PROCESSESxasync:TASKS, e.g. training=1000, web=16x8 or gpustack=3xasync:20",
                ExitCode.USAGE,
            )
        name = m.group("name").strip()
        kind = "async" if m.group("tasks") else "threads"
        processes, threads = int(m.group("processes")), int(m.group("threads") or m.group("tasks") or 1)
        if processes < 1 or threads < 1:
            raise PgDoctorError(f"--app {value!r}: processes and threads must be at least 1", ExitCode.USAGE)
        if any(a.name == name for a in apps):
            raise PgDoctorError(f"--app {name!r} given twice", ExitCode.USAGE)
        apps.append(AppSpec(name, processes, threads, kind=kind))
    return apps


def recommend(
    ram: Annotated[
        str | None,
        typer.Option(
            "--ram",
            help="The server's RAM: 128G, 128GB, 512MB, 1T, 64GiB (binary units). Required without a server.",
            show_default=False,
        ),
    ] = None,
    cpus: Annotated[
        int | None, typer.Option("--cpus", min=1, help="The server's CPU cores.", show_default=False)
    ] = None,
    storage: Annotated[Storage, typer.Option("--storage", case_sensitive=False)] = Storage.SSD,
    workload: Annotated[Workload, typer.Option("--workload", case_sensitive=False)] = Workload.WEB,
    pg_version: Annotated[
        int | None,
        typer.Option(
            "--pg-version",
            help="PostgreSQL major version (13-18). Default: the server's, else the newest.",
            show_default=False,
        ),
    ] = None,
    max_connections: Annotated[
        int | None,
        typer.Option(
            "--max-connections",
            min=1,
            help="Keep this max_connections. Default: sized from the pools (pgtune's when no --app).",
            show_default=False,
        ),
    ] = None,
    app: Annotated[
        list[str] | None,
        typer.Option(
            "--app",
            help="NAME=PROCESSES[xTHREADS] or NAME=PROCESSESxasync:TASKS, repeatable: OS processes of an "
            "application that each keep their own pool, and the threads (or asyncio tasks) using the "
            "database at once in each (default 1).",
            show_default=False,
        ),
    ] = None,
    pgbouncer: Annotated[
        bool | None,
        typer.Option(
            "--pgbouncer/--no-pgbouncer",
            help="Plan with or without PgBouncer. Default: advise it when the processes cannot each get a "
            "server connection directly.",
            show_default=False,
        ),
    ] = None,
    databases: Annotated[
        int, typer.Option("--databases", min=1, help="Databases behind PgBouncer, each with its own pool.")
    ] = 1,
    dsn: DsnOpt = None,
    snapshot: SnapshotOpt = None,
    fmt: Annotated[
        RecommendFormat,
        typer.Option(
            "--format",
            "-f",
            help="auto = table on a terminal, plain in a pipe; conf = postgresql.conf block, pgbouncer = "
            "pgbouncer.ini block, sqlalchemy = create_engine() (create_async_engine() for async) per "
            "application, django = DATABASES settings per application.",
            case_sensitive=False,
        ),
    ] = RecommendFormat.AUTO,
    timeout: TimeoutOpt = 5.0,
    fail_on: FailOnOpt = FailOn.NEVER,
    pgbouncer_dsn: Annotated[
        str | None,
        typer.Option(
            "--pgbouncer-dsn",
            help="Compare the [pgbouncer] plan with this running PgBouncer: its admin console (database "
            "`pgbouncer`; a role in admin_users or stats_users), SHOW commands only. A --snapshot taken "
            "with snapshot --pgbouncer-dsn is compared the same way.",
            show_default=False,
        ),
    ] = None,
    sample: Annotated[
        str | None,
        typer.Option(
            "--sample",
            metavar="DURATION",
            help="Sample the server (as connections --sample: pg_stat_activity every 100 ms for DURATION, "
            "e.g. 10s) and size the pools and PgBouncer from the measured demand: transactions/s x "
            "transaction time per application (Little's law), with headroom. Needs --dsn; a --snapshot "
            "taken with snapshot --sample is read the same way.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Settings and pool sizes that fit together: pgtune-compatible settings, app pools -> PgBouncer ->
    PostgreSQL, a worst-case memory check; with --dsn/--snapshot, compared with the running server, with
    --pgbouncer-dsn with the running PgBouncer."""
    from pgdoctor.analyze.recommend import Inputs, analyze
    from pgdoctor.analyze.sizing.settings import PG_VERSIONS
    from pgdoctor.analyze.sizing.units import parse_ram
    from pgdoctor.collect.connections import ConnectionsData
    from pgdoctor.collect.settings import SettingsData

    if fmt is RecommendFormat.OPENMETRICS:
        raise PgDoctorError(
            "--format openmetrics: recommend plans settings, it measures nothing to export (its findings "
            "are in --format json)",
            ExitCode.USAGE,
        )
    live = bool(dsn) or snapshot is not None
    _check_sources(dsn, snapshot, pgbouncer_dsn, pgbouncer, sample)
    if ram is None and not live and not pgbouncer_dsn:
        raise PgDoctorError(
            "--ram is required without a server (--dsn or --snapshot), e.g. --ram 128G", ExitCode.USAGE
        )
    if pg_version is not None and pg_version not in PG_VERSIONS:
        raise PgDoctorError(
            f"--pg-version {pg_version}: supported versions are {', '.join(map(str, PG_VERSIONS))}",
            ExitCode.USAGE,
        )
    inputs = Inputs(
        ram_bytes=parse_ram(ram) if ram is not None else None,
        cpus=cpus,
        storage=storage.value,
        workload=workload.value,
        pg_version=pg_version,
        max_connections=max_connections,
        apps=tuple(parse_apps(app or [])),
        pgbouncer=pgbouncer,
        databases=databases,
    )
    datasets = (("settings", SettingsData), ("connections", ConnectionsData))
    settings_data, connections_data = obtain_pair(*datasets, dsn, snapshot, timeout) if live else (None, None)
    from pgdoctor.collect.pgbouncer import PgBouncerData

    pooler: PgBouncerData | None = None
    if pgbouncer_dsn:
        from pgdoctor.collect.pgbouncer import collect_pgbouncer

        pooler = collect_pgbouncer(pgbouncer_dsn, timeout, connections_data)
    elif snapshot is not None:
        from pgdoctor.snapshot import load_optional

        pooler = load_optional(snapshot, "pgbouncer", PgBouncerData)
    sampled = _sample(dsn, snapshot, sample, timeout, progress=fmt is not RecommendFormat.JSON)
    report = analyze(inputs, settings_data, connections_data, pooler, sampled)

    from pgdoctor.render import recommend as render

    if fmt is RecommendFormat.CONF:
        typer.echo(render.conf(report), nl=False)
    elif fmt is RecommendFormat.PGBOUNCER:
        block = render.pgbouncer(report)
        if block is None:
            raise PgDoctorError(
                f"no PgBouncer in this plan ({report.pools.pgbouncer_reason}); add --pgbouncer to size one",
                ExitCode.USAGE,
            )
        typer.echo(block, nl=False)
    elif fmt is RecommendFormat.SQLALCHEMY:
        typer.echo(render.sqlalchemy(report), nl=False)
    elif fmt is RecommendFormat.DJANGO:
        typer.echo(render.django(report), nl=False)
    else:
        emit_report(Format(fmt.value), lambda: render.to_json(report), lambda: render.document(report))
    raise typer.Exit(exit_code(report.findings, fail_on))


def _sample(
    dsn: str | None, snapshot: Path | None, duration: str | None, timeout: float, *, progress: bool
) -> SampleReport | None:
    """The sample to size from: taken now (--sample, on its own connection after the other reads), or
    the one a `snapshot --sample` file holds; None without either."""
    from pgdoctor.commands.sampling import SAMPLE_DATASET, has_sample, parse_sample, show_progress

    if duration is not None:
        from pgdoctor.commands.sampling import sample
        from pgdoctor.db import connect

        seconds = parse_sample(duration)
        with connect(dsn, timeout) as db:
            shown = progress and show_progress(Format.TABLE)
            data, analysis = sample(db, seconds, progress=shown, keep_ticks=False)
        return analysis.finish(data)
    if snapshot is not None and has_sample(snapshot):
        from pgdoctor.analyze.sample import analyze_sample
        from pgdoctor.collect.sample import SampleData
        from pgdoctor.snapshot import load_dataset

        return analyze_sample(load_dataset(snapshot, SAMPLE_DATASET, SampleData))
    return None


def _check_sources(
    dsn: str | None,
    snapshot: Path | None,
    pgbouncer_dsn: str | None,
    pgbouncer: bool | None,
    sample: str | None,
) -> None:
    """Refuse combinations of sources that make no sense, before anything connects."""
    if pgbouncer_dsn and snapshot is not None:
        raise PgDoctorError(
            "give either --pgbouncer-dsn or --snapshot (a snapshot taken with --pgbouncer-dsn holds "
            "PgBouncer's data), not both",
            ExitCode.USAGE,
        )
    if pgbouncer_dsn and pgbouncer is False:
        raise PgDoctorError(
            "--no-pgbouncer plans without PgBouncer: there is nothing to compare --pgbouncer-dsn with",
            ExitCode.USAGE,
        )
    if sample is not None and not dsn:
        raise PgDoctorError(
            "--sample reads a live server: give --dsn (or --snapshot of a `snapshot --sample` file, without "
            "--sample)",
            ExitCode.USAGE,
        )
    if sample is not None:
        from pgdoctor.commands.sampling import parse_sample

        parse_sample(sample)  # a bad duration is refused before anything connects
