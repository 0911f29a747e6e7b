"""`pgdoctor locks`: who blocks whom, as a tree, for every kind of lock."""

from __future__ import annotations

from typing import Annotated

import typer

from pgdoctor.errors import ExitCode
from pgdoctor.options import (
    DsnOpt,
    FailOn,
    FailOnOpt,
    FormatOpt,
    FullOpt,
    SnapshotOpt,
    TimeoutOpt,
    exit_code,
)
from pgdoctor.render.formats import Format


def locks(
    dsn: DsnOpt = None,
    snapshot: SnapshotOpt = None,
    fmt: FormatOpt = Format.AUTO,
    timeout: TimeoutOpt = 5.0,
    fail_on: FailOnOpt = FailOn.NEVER,
    full: FullOpt = False,
    min_wait: Annotated[
        float, typer.Option("--min-wait", min=0, help="Hide sessions waiting fewer seconds than this.")
    ] = 0.0,
    show_all: Annotated[
        bool,
        typer.Option(
            "--all", help="Add a summary of the whole lock table by type, object and mode (one more scan)."
        ),
    ] = False,
    fast: Annotated[
        bool,
        typer.Option(
            "--fast",
            help="Never read pg_locks: blocking pids only, lock type from wait_event, no mode or object.",
        ),
    ] = False,
    wait_warn: Annotated[float, typer.Option(help="Seconds waiting on a lock before a warning.")] = 10.0,
    wait_crit: Annotated[float, typer.Option(help="Seconds waiting on a lock before critical.")] = 60.0,
    queue_warn: Annotated[int, typer.Option(help="Sessions waiting on one object before a warning.")] = 5,
    queue_crit: Annotated[int, typer.Option(help="Sessions waiting on one object before critical.")] = 20,
    pressure_warn_pct: Annotated[
        float, typer.Option(help="Warn when this % of the shared lock table is used.")
    ] = 80.0,
    pressure_crit_pct: Annotated[
        float, typer.Option(help="Critical at this % of the shared lock table.")
    ] = 95.0,
) -> None:
    """Who blocks whom: root blockers and the sessions queued behind them, for every lock type."""
    from pgdoctor.analyze.locks import analyze
    from pgdoctor.collect.locks import LocksData, collect
    from pgdoctor.errors import PgDoctorError
    from pgdoctor.render import locks as render
    from pgdoctor.render.document import emit, emit_json

    if snapshot is not None:
        if dsn:
            raise PgDoctorError("give either --dsn or --snapshot, not both", ExitCode.USAGE)
        from pgdoctor.snapshot import load_dataset

        data = load_dataset(snapshot, "locks", LocksData)
        if fast:
            data = LocksData(data.server, data.sessions, None, None, data.summary)
    else:
        from pgdoctor.db import connect

        with connect(dsn, timeout) as db:
            data = collect(db, details=not fast, summary=show_all)
    report = analyze(
        data,
        min_wait_s=min_wait,
        wait_warn_s=wait_warn,
        wait_crit_s=wait_crit,
        queue_warn=queue_warn,
        queue_crit=queue_crit,
        pressure_warn_pct=pressure_warn_pct,
        pressure_crit_pct=pressure_crit_pct,
    )
    if fmt is Format.JSON:
        emit_json(render.to_json(report, show_all=show_all))
    else:
        emit(render.document(report, full=full, show_all=show_all), fmt)
    code = exit_code(report.findings, fail_on)
    if any(f.code == "insufficient_privilege" for f in report.findings):
        code = code or int(ExitCode.PRIVILEGE)
    raise typer.Exit(code)
