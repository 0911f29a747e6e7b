"""`pgdoctor triage`: every diagnosis of one read on one connection, merged into ranked problems."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from pgdoctor.errors import ExitCode, PgDoctorError
from pgdoctor.options import (
    DsnOpt,
    FailOn,
    FailOnOpt,
    FormatOpt,
    FullOpt,
    PgBouncerDsnOpt,
    SnapshotOpt,
    TimeoutOpt,
    emit_report,
    exit_code,
)
from pgdoctor.render.formats import Format

if TYPE_CHECKING:
    from pgdoctor.analyze.triage import TriageReport
    from pgdoctor.collect.triage import TriageData


def triage(
    dsn: DsnOpt = None,
    snapshot: SnapshotOpt = None,
    fmt: FormatOpt = Format.AUTO,
    timeout: TimeoutOpt = 5.0,
    fail_on: FailOnOpt = FailOn.NEVER,
    full: FullOpt = False,
    pgbouncer_dsn: PgBouncerDsnOpt = None,
) -> None:
    """Run first, mid-incident: connections, locks, slow-queries (and PgBouncer) in one read, one problem
    per cause, most urgent first, with what to do first at the top.

    One connection; pg_stat_activity read once for every analysis. With --fail-on, the check for cron."""
    from pgdoctor.analyze.triage import analyze
    from pgdoctor.render import triage as render

    if snapshot is not None:
        if dsn:
            raise PgDoctorError("give either --dsn or --snapshot, not both", ExitCode.USAGE)
        if pgbouncer_dsn:
            raise PgDoctorError(
                "--pgbouncer-dsn reads a live PgBouncer: not with --snapshot (a snapshot taken with "
                "--pgbouncer-dsn holds PgBouncer's data)",
                ExitCode.USAGE,
            )
    pooler_failed = None
    if snapshot is not None:
        data = from_snapshot(snapshot)
    else:
        data, pooler_failed = live(dsn, timeout, pgbouncer_dsn)
    report = analyze(data)
    emit_report(
        fmt,
        lambda: render.to_json(report),
        lambda: render.document(report, full=full),
        metrics=lambda: _metrics(report),
    )
    code = exit_code(report.every_finding, fail_on)
    if pooler_failed is not None:
        typer.echo(f"error: PgBouncer: {report.pgbouncer_error}", err=True)
        if code != ExitCode.FINDINGS:
            code = int(pooler_failed)  # reported, and still the error's exit code (3: cannot connect)
    raise typer.Exit(code)


def _metrics(report: TriageReport) -> str:
    from pgdoctor.render.openmetrics_reports import metrics_of

    return metrics_of("triage", report)


def live(dsn: str | None, timeout: float, pgbouncer_dsn: str | None) -> tuple[TriageData, ExitCode | None]:
    """The live read; PgBouncer's console that cannot be read is reported (`pgbouncer_error`) with the
    PostgreSQL side, not instead of it: mid-incident the pooler may be the part that is down or full."""
    from dataclasses import replace

    from pgdoctor.collect.triage import collect, with_pgbouncer
    from pgdoctor.db import connect

    with connect(dsn, timeout) as db:
        data = collect(db)
    if not pgbouncer_dsn:
        return data, None
    try:
        return with_pgbouncer(data, pgbouncer_dsn, timeout), None
    except PgDoctorError as exc:
        return replace(data, pgbouncer_error=exc.message), exc.exit_code


def from_snapshot(path: Path) -> TriageData:
    """Every dataset triage reads, from a snapshot (PgBouncer's when it was taken with --pgbouncer-dsn)."""
    from pgdoctor.collect.connections import ConnectionsData
    from pgdoctor.collect.locks import LocksData
    from pgdoctor.collect.pgbouncer import PgBouncerData
    from pgdoctor.collect.statements import StatementsData
    from pgdoctor.collect.triage import TriageData
    from pgdoctor.snapshot import load_datasets

    wanted: dict[str, type] = {
        "connections": ConnectionsData,
        "locks": LocksData,
        "statements": StatementsData,
        "pgbouncer": PgBouncerData,
    }
    found = load_datasets(path, wanted, optional=("pgbouncer",))
    return TriageData(found["connections"], found["locks"], found["statements"], found["pgbouncer"])
