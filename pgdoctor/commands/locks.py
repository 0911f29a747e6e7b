"""`pgdoctor locks`: who blocks whom, as a tree, for every kind of lock."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer

from pgdoctor.analyze.thresholds import (
    LOCK_PRESSURE_CRIT_PCT,
    LOCK_PRESSURE_WARN_PCT,
    LOCK_QUEUE_CRIT,
    LOCK_QUEUE_WARN,
    LOCK_WAIT_CRIT_S,
    LOCK_WAIT_WARN_S,
)
from pgdoctor.options import (
    DsnOpt,
    FailOn,
    FailOnOpt,
    FormatOpt,
    FullOpt,
    SnapshotOpt,
    TimeoutOpt,
    WatchOpt,
    emit_report,
    exit_code,
    metrics,
    obtain,
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
    wait_warn: Annotated[
        float, typer.Option(help="Seconds waiting on a lock before a warning.")
    ] = LOCK_WAIT_WARN_S,
    wait_crit: Annotated[
        float, typer.Option(help="Seconds waiting on a lock before critical.")
    ] = LOCK_WAIT_CRIT_S,
    queue_warn: Annotated[
        int, typer.Option(help="Sessions waiting on one object before a warning.")
    ] = LOCK_QUEUE_WARN,
    queue_crit: Annotated[
        int, typer.Option(help="Sessions waiting on one object before critical.")
    ] = LOCK_QUEUE_CRIT,
    pressure_warn_pct: Annotated[
        float, typer.Option(help="Warn when this % of the shared lock table is used.")
    ] = LOCK_PRESSURE_WARN_PCT,
    pressure_crit_pct: Annotated[
        float, typer.Option(help="Critical at this % of the shared lock table.")
    ] = LOCK_PRESSURE_CRIT_PCT,
    watch: WatchOpt = None,
) -> None:
    """Who blocks whom: root blockers and the sessions queued behind them, for every lock type.

    Deadlocks (sessions waiting on each other) are reported by group: every session on some cycle of
    the wait graph is named, with the one to end to break all the group's cycles when there is one.
    """
    from pgdoctor.analyze.locks import LocksReport, analyze
    from pgdoctor.collect.locks import LocksData, collect
    from pgdoctor.render import locks as render

    def report_of(data: LocksData) -> LocksReport:
        return analyze(
            data,
            min_wait_s=min_wait,
            wait_warn_s=wait_warn,
            wait_crit_s=wait_crit,
            queue_warn=queue_warn,
            queue_crit=queue_crit,
            pressure_warn_pct=pressure_warn_pct,
            pressure_crit_pct=pressure_crit_pct,
        )

    if watch is not None:
        from pgdoctor.collect.locks import collect_again
        from pgdoctor.commands.watching import refuse, watch_locks

        refuse(fmt, snapshot=snapshot)
        watch_locks(
            watch,
            dsn,
            fmt,
            timeout,
            lambda db, server: collect_again(db, server, details=not fast, summary=show_all),
            report_of,
            lambda r: render.to_json(r, show_all=show_all),
            lambda r: render.document(r, full=full, show_all=show_all),
        )
    data = obtain(
        "locks",
        LocksData,
        dsn,
        snapshot,
        timeout,
        live=lambda db: collect(db, details=not fast, summary=show_all),
    )
    if snapshot is not None and fast:  # a snapshot always has the details; --fast shows it without them
        data = replace(data, waits=None, lock_table=None)
    report = report_of(data)
    emit_report(
        fmt,
        lambda: render.to_json(report, show_all=show_all),
        lambda: render.document(report, full=full, show_all=show_all),
        metrics("locks", report),
    )
    raise typer.Exit(exit_code(report.findings, fail_on))
