"""`pgdoctor connections`: who holds the connections."""

# No `from __future__ import annotations`: typer reads this command's annotations on every run, and
# as objects (not text to evaluate) they cost half as much to read (benchmarks/README.md, issue 12).

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pgdoctor.analyze import thresholds as t
from pgdoctor.analyze.choices import GroupBy
from pgdoctor.commands.sampling import SAMPLE_HELP
from pgdoctor.errors import ExitCode, PgDoctorError
from pgdoctor.gcpause import gc_paused
from pgdoctor.options import (
    BlockedCritOpt,
    CapacityCritOpt,
    CapacityWarnOpt,
    DsnOpt,
    FailOn,
    FailOnOpt,
    FormatOpt,
    FullOpt,
    IdleXactCritOpt,
    IdleXactWarnOpt,
    LeakIdleAgeOpt,
    LeakMinIdleOpt,
    LeakSharePctOpt,
    PgBouncerDsnOpt,
    SnapshotOpt,
    TimeoutOpt,
    WatchOpt,
    XminWarnOpt,
    emit_report,
    exit_code,
    metrics,
    obtain,
)
from pgdoctor.render.formats import Format

if TYPE_CHECKING:
    from pgdoctor.analyze.sessions import ViaPgBouncer


def connections(
    dsn: DsnOpt = None,
    snapshot: SnapshotOpt = None,
    fmt: FormatOpt = Format.AUTO,
    timeout: TimeoutOpt = 5.0,
    fail_on: FailOnOpt = FailOn.NEVER,
    by: Annotated[
        GroupBy | None,
        typer.Option(
            "--by",
            help="Group sessions by this. Default: application (user with --ps).",
            case_sensitive=False,
            show_default=False,
        ),
    ] = None,
    sessions: Annotated[bool, typer.Option("--sessions", help="List every client session too.")] = False,
    full: FullOpt = False,
    capacity_warn_pct: CapacityWarnOpt = t.CAPACITY_WARN_PCT,
    capacity_crit_pct: CapacityCritOpt = t.CAPACITY_CRIT_PCT,
    idle_xact_warn: IdleXactWarnOpt = t.IDLE_XACT_WARN_S,
    idle_xact_crit: IdleXactCritOpt = t.IDLE_XACT_CRIT_S,
    leak_min_idle: LeakMinIdleOpt = t.LEAK_MIN_IDLE,
    leak_share_pct: LeakSharePctOpt = t.LEAK_SHARE_PCT,
    leak_idle_age: LeakIdleAgeOpt = t.LEAK_IDLE_S,
    blocked_crit: BlockedCritOpt = t.BLOCKED_CRIT_S,
    xmin_warn: XminWarnOpt = t.XMIN_WARN_S,
    ps: Annotated[
        bool,
        typer.Option(
            "--ps",
            help="Do not connect: read the backends' process titles on this host (Linux; run it on the "
            "database host or in its container), for when every slot is taken ('too many clients "
            "already'). Picks the server listening on the --dsn's port (else PGPORT, else 5432).",
        ),
    ] = False,
    pgbouncer_dsn: PgBouncerDsnOpt = None,
    sample: Annotated[str | None, typer.Option("--sample", metavar="DURATION", help=SAMPLE_HELP)] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="With --ps: the server of this data directory, whatever its port."),
    ] = None,
    watch: WatchOpt = None,
) -> None:
    """Who holds the connections: sessions classified and grouped, against the real capacity.

    With --ps, from the process list instead of SQL, when no SQL client can get in."""
    from pgdoctor.render import connections as render

    if watch is not None:
        from pgdoctor.commands.watching import refuse

        refuse(fmt, snapshot=snapshot, sample=sample, ps=ps)
    if sample is not None and (ps or pgbouncer_dsn):
        raise PgDoctorError(
            "--sample reads pg_stat_activity over SQL: not with --ps or --pgbouncer-dsn", ExitCode.USAGE
        )
    if sample is not None or (snapshot is not None and not ps and _sampled(snapshot)):
        from pgdoctor.commands.sampling import connections_sample

        connections_sample(dsn, snapshot, sample, fmt, timeout, fail_on)
    if data_dir is not None and not ps:
        raise PgDoctorError("--data-dir goes with --ps", ExitCode.USAGE)
    if ps:
        from pgdoctor.analyze.connections_ps import analyze_ps
        from pgdoctor.collect.ps_proc import collect_ps, port_of

        if snapshot is not None:
            raise PgDoctorError("give either --ps or --snapshot, not both", ExitCode.USAGE)
        if by is GroupBy.APPLICATION:
            others = "|".join(g for g in GroupBy if g is not GroupBy.APPLICATION)
            raise PgDoctorError(
                f"process titles carry no application_name: use --by {others}", ExitCode.USAGE
            )
        port = None if data_dir is not None else port_of(dsn)
        ps_report = analyze_ps(
            collect_ps(port, data_dir),
            by=(by or GroupBy.USER).value,
            capacity_warn_pct=capacity_warn_pct,
            capacity_crit_pct=capacity_crit_pct,
            leak_min_idle=leak_min_idle,
            leak_share_pct=leak_share_pct,
        )
        emit_report(
            fmt,
            lambda: render.to_json(ps_report),
            lambda: render.document(ps_report, show_sessions=sessions, full=full),
            metrics("connections", ps_report),
        )
        raise typer.Exit(exit_code(ps_report.findings, fail_on))

    from pgdoctor.analyze.connections import ConnectionsReport, analyze
    from pgdoctor.collect.connections import ConnectionsData

    def report_of(
        data: "ConnectionsData", via: "dict[int, ViaPgBouncer] | None" = None
    ) -> "ConnectionsReport":
        report = analyze(
            data,
            by=(by or GroupBy.APPLICATION).value,
            capacity_warn_pct=capacity_warn_pct,
            capacity_crit_pct=capacity_crit_pct,
            idle_xact_warn_s=idle_xact_warn,
            idle_xact_crit_s=idle_xact_crit,
            leak_min_idle=leak_min_idle,
            leak_share_pct=leak_share_pct,
            leak_idle_s=leak_idle_age,
            blocked_crit_s=blocked_crit,
            xmin_warn_s=xmin_warn,
            via=via,
        )
        from dataclasses import replace

        from pgdoctor.analyze.findings import sort_findings
        from pgdoctor.analyze.pool_hint import likely_saturated

        # one read that looks like a pool at its ceiling: a warning that asks for --sample to confirm
        return replace(report, findings=sort_findings(report.findings + likely_saturated(report)))

    if watch is not None:
        from pgdoctor.commands.watching import watch_connections

        watch_connections(
            watch,
            dsn,
            pgbouncer_dsn,
            fmt,
            timeout,
            report_of,
            lambda r: render.document(r, show_sessions=sessions, full=full),
        )
    data = obtain("connections", ConnectionsData, dsn, snapshot, timeout)
    via = None
    if pgbouncer_dsn:
        # Three layers: each backend that is a PgBouncer server connection, with the client it serves
        # now (read right after the backends, so the two views are as close in time as can be).
        from pgdoctor.analyze.pgbouncer_rows import via_map
        from pgdoctor.collect.pgbouncer import collect_pgbouncer

        if snapshot is not None:
            raise PgDoctorError("--pgbouncer-dsn reads a live PgBouncer: not with --snapshot", ExitCode.USAGE)
        via = via_map(collect_pgbouncer(pgbouncer_dsn, timeout))
    with gc_paused():  # 100,000 sessions from a snapshot: no GC passes over them (they make no cycles)
        report = report_of(data, via)
        emit_report(
            fmt,
            lambda: render.json_payload(report),
            lambda: render.document(report, show_sessions=sessions, full=full),
            metrics("connections", report),
        )
    raise typer.Exit(exit_code(report.findings, fail_on))


def _sampled(snapshot: Path) -> bool:
    from pgdoctor.commands.sampling import has_sample

    return has_sample(snapshot)
