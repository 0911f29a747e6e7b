"""`pgdoctor slow-queries`: what eats the server's time (pg_stat_statements, every version)."""

from __future__ import annotations

from typing import Annotated

import typer

from pgdoctor.analyze.choices import Sort
from pgdoctor.analyze.thresholds import (
    CALLS_MIN,
    HIT_RATIO_MIN_PCT,
    MEAN_WARN_MS,
    RESET_RECENT_S,
    RUNNING_MIN_S,
    RUNNING_WARN_S,
    SHARE_CRIT_PCT,
    SHARE_MIN_TOTAL_MS,
    SHARE_WARN_PCT,
)
from pgdoctor.errors import ExitCode, PgDoctorError
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
    metrics,
    obtain,
)
from pgdoctor.render.formats import Format

MAX_INTERVAL_S = 3600.0


def parse_interval(text: str) -> float:
    """'30s', '2m', '500ms', '1h' or plain seconds ('45', '0.5') -> seconds; else a usage error."""
    from pgdoctor.durations import parse

    return parse(text, "--interval", 0, MAX_INTERVAL_S, "30s, 2m, 500ms or plain seconds")


def slow_queries(
    dsn: DsnOpt = None,
    snapshot: SnapshotOpt = None,
    fmt: FormatOpt = Format.AUTO,
    timeout: TimeoutOpt = 5.0,
    fail_on: FailOnOpt = FailOn.NEVER,
    full: FullOpt = False,
    sort: Annotated[Sort, typer.Option("--sort", help="Order statements by this.", case_sensitive=False)] = (
        Sort.TOTAL
    ),
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="How many statements.")] = 10,
    database: Annotated[
        str | None, typer.Option("--database", help="Only statements run in this database.")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="Only statements run by this role.")] = None,
    interval: Annotated[
        str | None,
        typer.Option(
            "--interval",
            help="Read twice this far apart (30s, 2m, 500ms) and report the difference: slow right now, "
            "not since the last reset.",
            show_default=False,
        ),
    ] = None,
    running_min: Annotated[
        float, typer.Option(help="List statements running now for at least this many seconds.")
    ] = RUNNING_MIN_S,
    running_warn: Annotated[
        float, typer.Option(help="Seconds a running statement may take before a warning.")
    ] = RUNNING_WARN_S,
    share_warn_pct: Annotated[
        float, typer.Option(help="Warn when one statement takes this % of all statement time.")
    ] = SHARE_WARN_PCT,
    share_crit_pct: Annotated[float, typer.Option(help="...critical at this %.")] = SHARE_CRIT_PCT,
    share_min_total_ms: Annotated[
        float, typer.Option(help="...only once the server did at least this much statement work (ms).")
    ] = SHARE_MIN_TOTAL_MS,
    mean_warn_ms: Annotated[
        float, typer.Option(help="Slow and frequent: mean time per call at least this (ms)...")
    ] = MEAN_WARN_MS,
    calls_min: Annotated[int, typer.Option(help="...with at least this many calls.")] = CALLS_MIN,
    hit_ratio_min: Annotated[
        float, typer.Option(help="Warn below this shared-buffer hit ratio (%).")
    ] = HIT_RATIO_MIN_PCT,
    reset_recent: Annotated[
        float, typer.Option(help="Say so when the statistics were reset less than this many seconds ago.")
    ] = RESET_RECENT_S,
) -> None:
    """What eats the server's time: top statements from pg_stat_statements, and what runs now."""
    from pgdoctor.analyze.slow_queries import PlanNotTracked, analyze
    from pgdoctor.collect.statements import StatementsData, collect
    from pgdoctor.render import slow_queries as render

    interval_s = parse_interval(interval) if interval is not None else None
    if snapshot is not None and interval_s is not None:
        raise PgDoctorError(
            "--interval reads a live server twice; it cannot be used with --snapshot", ExitCode.USAGE
        )
    data = obtain(
        "statements",
        StatementsData,
        dsn,
        snapshot,
        timeout,
        live=lambda db: collect(
            db, sorts=(sort.value,), limit=limit, database=database, user=user, interval_s=interval_s
        ),
    )
    try:
        report = analyze(
            data,
            sort=sort.value,
            limit=limit,
            database=database,
            user=user,
            running_min_s=running_min,
            running_warn_s=running_warn,
            share_warn_pct=share_warn_pct,
            share_crit_pct=share_crit_pct,
            share_min_total_ms=share_min_total_ms,
            mean_warn_ms=mean_warn_ms,
            calls_min=calls_min,
            hit_ratio_min_pct=hit_ratio_min,
            reset_recent_s=reset_recent,
        )
    except PlanNotTracked as exc:
        raise PgDoctorError(
            f"--sort plan: {exc}; ALTER SYSTEM SET pg_stat_statements.track_planning = on; "
            "SELECT pg_reload_conf();",
            ExitCode.UNAVAILABLE,
        ) from None
    emit_report(
        fmt,
        lambda: render.to_json(report),
        lambda: render.document(report, full=full),
        metrics("slow-queries", report),
    )
    raise typer.Exit(exit_code(report.findings, fail_on, report.unusable))
