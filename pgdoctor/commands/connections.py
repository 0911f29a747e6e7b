"""`pgdoctor connections`: who holds the connections."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from pgdoctor.options import (
    DsnOpt,
    FailOn,
    FailOnOpt,
    FormatOpt,
    FullOpt,
    SnapshotOpt,
    TimeoutOpt,
    emit_report,
    exit_code,
    obtain,
)
from pgdoctor.render.formats import Format


class By(StrEnum):
    APPLICATION = "application"
    USER = "user"
    DATABASE = "database"
    CLIENT = "client"


def connections(
    dsn: DsnOpt = None,
    snapshot: SnapshotOpt = None,
    fmt: FormatOpt = Format.AUTO,
    timeout: TimeoutOpt = 5.0,
    fail_on: FailOnOpt = FailOn.NEVER,
    by: Annotated[
        By, typer.Option("--by", help="Group sessions by this.", case_sensitive=False)
    ] = By.APPLICATION,
    sessions: Annotated[bool, typer.Option("--sessions", help="List every client session too.")] = False,
    full: FullOpt = False,
    capacity_warn_pct: Annotated[
        float, typer.Option(help="Warn when this % of usable slots is used.")
    ] = 80.0,
    capacity_crit_pct: Annotated[float, typer.Option(help="Critical at this % of usable slots.")] = 95.0,
    idle_xact_warn: Annotated[
        float, typer.Option(help="Seconds idle in transaction before a warning.")
    ] = 60.0,
    idle_xact_crit: Annotated[
        float, typer.Option(help="Seconds idle in transaction before critical.")
    ] = 600.0,
    leak_min_idle: Annotated[int, typer.Option(help="Idle connections of one app that may be a leak.")] = 10,
    leak_share_pct: Annotated[float, typer.Option(help="...or that take this % of usable slots.")] = 25.0,
    leak_idle_age: Annotated[
        float, typer.Option(help="Seconds idle after which a connection looks leaked.")
    ] = 600.0,
    blocked_crit: Annotated[float, typer.Option(help="Seconds waiting on a lock before critical.")] = 60.0,
    xmin_warn: Annotated[float, typer.Option(help="Seconds a transaction may hold back xmin.")] = 3600.0,
) -> None:
    """Who holds the connections: sessions classified and grouped, against the real capacity."""
    from pgdoctor.analyze.connections import analyze
    from pgdoctor.collect.connections import ConnectionsData
    from pgdoctor.render import connections as render

    data = obtain("connections", ConnectionsData, dsn, snapshot, timeout)
    report = analyze(
        data,
        by=by.value,
        capacity_warn_pct=capacity_warn_pct,
        capacity_crit_pct=capacity_crit_pct,
        idle_xact_warn_s=idle_xact_warn,
        idle_xact_crit_s=idle_xact_crit,
        leak_min_idle=leak_min_idle,
        leak_share_pct=leak_share_pct,
        leak_idle_s=leak_idle_age,
        blocked_crit_s=blocked_crit,
        xmin_warn_s=xmin_warn,
    )
    emit_report(
        fmt,
        lambda: render.to_json(report),
        lambda: render.document(report, show_sessions=sessions, full=full),
    )
    raise typer.Exit(exit_code(report.findings, fail_on))
