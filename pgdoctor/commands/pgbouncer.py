"""`pgdoctor pgbouncer`: PgBouncer's pools, clients and server connections, from its admin console."""

# No `from __future__ import annotations`: typer reads this command's annotations on every run, and
# as objects (not text to evaluate) they cost half as much to read (benchmarks/README.md, issue 12).

from typing import Annotated

import typer

from pgdoctor.analyze import thresholds as t
from pgdoctor.errors import ExitCode, PgDoctorError
from pgdoctor.options import (
    DsnOpt,
    FailOn,
    FailOnOpt,
    FormatOpt,
    PostgresDsnOpt,
    SnapshotOpt,
    TimeoutOpt,
    WatchOpt,
    emit_report,
    exit_code,
    metrics,
)
from pgdoctor.render.formats import Format


def pgbouncer(
    dsn: DsnOpt = None,
    snapshot: SnapshotOpt = None,
    fmt: FormatOpt = Format.AUTO,
    timeout: TimeoutOpt = 5.0,
    fail_on: FailOnOpt = FailOn.NEVER,
    postgres_dsn: PostgresDsnOpt = None,
    wait_crit_pct: Annotated[
        float, typer.Option(help="clients_waiting is critical at this % of query_wait_timeout.")
    ] = t.PGB_WAIT_CRIT_PCT,
    wait_crit: Annotated[
        float, typer.Option(help="...or, with query_wait_timeout = 0, after this many seconds.")
    ] = t.PGB_WAIT_CRIT_S,
    server_xact_warn: Annotated[
        float, typer.Option(help="Seconds a transaction may hold a server connection.")
    ] = t.PGB_SERVER_XACT_WARN_S,
    client_warn_pct: Annotated[
        float, typer.Option(help="Warn at this % of max_client_conn.")
    ] = t.PGB_CLIENT_WARN_PCT,
    client_crit_pct: Annotated[
        float, typer.Option(help="Critical at this % of max_client_conn.")
    ] = t.PGB_CLIENT_CRIT_PCT,
    watch: WatchOpt = None,
) -> None:
    """PgBouncer's pools: clients waiting, full pools, long transactions holding server connections.

    --dsn is PgBouncer's admin console (database `pgbouncer`, a role in admin_users or stats_users);
    pgdoctor sends it SHOW commands only."""
    from pgdoctor.analyze.pgbouncer import PgBouncerReport, analyze
    from pgdoctor.collect.pgbouncer import PgBouncerData, collect
    from pgdoctor.render import pgbouncer as render

    def report_of(data: PgBouncerData) -> PgBouncerReport:
        return analyze(
            data,
            wait_crit_pct=wait_crit_pct,
            wait_crit_s=wait_crit,
            server_xact_warn_s=server_xact_warn,
            client_warn_pct=client_warn_pct,
            client_crit_pct=client_crit_pct,
        )

    if watch is not None:
        from pgdoctor.commands.watching import refuse, watch_pgbouncer

        refuse(fmt, snapshot=snapshot)
        watch_pgbouncer(watch, dsn, postgres_dsn, fmt, timeout, report_of)
    if snapshot is not None:
        if dsn or postgres_dsn:
            raise PgDoctorError("give either --dsn/--postgres-dsn or --snapshot, not both", ExitCode.USAGE)
        from pgdoctor.snapshot import load_dataset

        data = load_dataset(snapshot, "pgbouncer", PgBouncerData)
    else:
        data = collect(dsn, timeout, postgres_dsn)
    report = report_of(data)
    emit_report(
        fmt,
        lambda: render.to_json(report),
        lambda: render.document(report),
        metrics("pgbouncer", report),
    )
    raise typer.Exit(exit_code(report.findings, fail_on))
