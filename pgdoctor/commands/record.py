"""`pgdoctor record`: a compact sample of what `connections` (and `pgbouncer`) reads, every tick, appended
to a JSON Lines file, for `pgdoctor timeline` to tell the story afterwards."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pgdoctor.analyze import thresholds as t
from pgdoctor.errors import ExitCode, PgDoctorError
from pgdoctor.options import (
    BlockedCritOpt,
    CapacityCritOpt,
    CapacityWarnOpt,
    DsnOpt,
    IdleXactCritOpt,
    IdleXactWarnOpt,
    LeakIdleAgeOpt,
    LeakMinIdleOpt,
    LeakSharePctOpt,
    PgBouncerDsnOpt,
    TimeoutOpt,
    XminWarnOpt,
)

if TYPE_CHECKING:
    from pgdoctor.collect.pgbouncer import Console
    from pgdoctor.db import Database
    from pgdoctor.snapshot.recording import Writer

_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*(b|k|kb|m|mb|g|gb)?\s*$", re.IGNORECASE)
_UNIT_B = {"b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30}

# A tick is one pg_stat_activity read: more often than this is `connections --sample`'s job.
MIN_EVERY_S = 0.1
MAX_EVERY_S = 3600.0
MAX_FOR_S = 30 * 86400.0
# The file's bound: at 5 s and 20 applications a tick is ~1 kB, so 100 MB hold weeks.
DEFAULT_MAX_SIZE = "100MB"
MIN_MAX_SIZE = 4096


def parse_duration(text: str, option: str, low: float, high: float) -> float:
    """'5s', '500ms', '2m', '1h' or plain seconds -> seconds, within [low, high]; else a usage error."""
    from pgdoctor.durations import parse

    return parse(text, option, low, high, "5s, 2m or 1h")


def parse_size(text: str) -> int:
    """'100MB', '1G', '512k' or plain bytes -> bytes (at least MIN_MAX_SIZE); else a usage error."""
    m = _SIZE.match(text)
    shown = repr(text[:40])
    if not m:
        raise PgDoctorError(f"invalid --max-size {shown}: give a size such as 100MB or 1GB", ExitCode.USAGE)
    size = int(float(m.group(1)) * _UNIT_B[(m.group(2) or "b").lower()])
    if size < MIN_MAX_SIZE:
        raise PgDoctorError(f"invalid --max-size {shown}: at least {MIN_MAX_SIZE} bytes", ExitCode.USAGE)
    return size


def record(
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="The recording (JSON Lines). An existing recording of the same server is continued; "
            "one of another server is an error.",
        ),
    ],
    dsn: DsnOpt = None,
    every: Annotated[
        str, typer.Option("--every", metavar="DURATION", help="A tick every DURATION (500ms, 5s, 1m).")
    ] = "5s",
    duration: Annotated[
        str | None,
        typer.Option(
            "--for",
            metavar="DURATION",
            help="Stop after DURATION (30m, 2h). Default: until Ctrl-C or SIGTERM.",
        ),
    ] = None,
    max_size: Annotated[
        str,
        typer.Option("--max-size", metavar="SIZE", help="Stop before the file grows past SIZE (100MB, 1GB)."),
    ] = DEFAULT_MAX_SIZE,
    pgbouncer_dsn: PgBouncerDsnOpt = None,
    timeout: TimeoutOpt = 5.0,
    capacity_warn_pct: CapacityWarnOpt = t.CAPACITY_WARN_PCT,
    capacity_crit_pct: CapacityCritOpt = t.CAPACITY_CRIT_PCT,
    idle_xact_warn: IdleXactWarnOpt = t.IDLE_XACT_WARN_S,
    idle_xact_crit: IdleXactCritOpt = t.IDLE_XACT_CRIT_S,
    leak_min_idle: LeakMinIdleOpt = t.LEAK_MIN_IDLE,
    leak_share_pct: LeakSharePctOpt = t.LEAK_SHARE_PCT,
    leak_idle_age: LeakIdleAgeOpt = t.LEAK_IDLE_S,
    blocked_crit: BlockedCritOpt = t.BLOCKED_CRIT_S,
    xmin_warn: XminWarnOpt = t.XMIN_WARN_S,
) -> None:
    """Record what `connections` reads (and PgBouncer's pools) every tick, for `pgdoctor timeline`.

    One compact JSON line per tick (counts per application and class, capacity, lock waits, the oldest
    transactions, the findings present), flushed as written; Ctrl-C or SIGTERM stops it (exit 0)."""
    every_s = parse_duration(every, "--every", MIN_EVERY_S, MAX_EVERY_S)
    for_s = parse_duration(duration, "--for", MIN_EVERY_S, MAX_FOR_S) if duration is not None else None
    limit = parse_size(max_size)
    thresholds: dict[str, Any] = {
        "capacity_warn_pct": capacity_warn_pct,
        "capacity_crit_pct": capacity_crit_pct,
        "idle_xact_warn_s": idle_xact_warn,
        "idle_xact_crit_s": idle_xact_crit,
        "leak_min_idle": leak_min_idle,
        "leak_share_pct": leak_share_pct,
        "leak_idle_s": leak_idle_age,
        "blocked_crit_s": blocked_crit,
        "xmin_warn_s": xmin_warn,
    }
    if str(output) == "-":
        raise PgDoctorError("-o -: a recording is a file (it is appended to), not stdout", ExitCode.USAGE)
    if output.exists() and output.is_dir():
        raise PgDoctorError(f"-o {output} is a directory: give a file", ExitCode.USAGE)
    from pgdoctor.collect import record as collect
    from pgdoctor.db import connect

    with connect(dsn, timeout) as db, collect.pgbouncer(pgbouncer_dsn, timeout) as console:
        writer = _open(db, console, output, every_s, thresholds, limit)
        try:
            ticks, why = _loop(db, console, writer, every_s, for_s, thresholds)
        finally:
            writer.close()
    print(f"{why}: {ticks} tick(s) recorded in {output}; `pgdoctor timeline {output}` tells the story",
          file=sys.stderr)  # fmt: skip
    raise typer.Exit(0)


def _open(
    db: Database,
    console: Console | None,
    output: Path,
    every_s: float,
    thresholds: dict[str, Any],
    limit: int,
) -> Writer:
    from pgdoctor import __version__
    from pgdoctor.analyze.record import Header, ServerId
    from pgdoctor.collect import record as collect
    from pgdoctor.snapshot.recording import VERSION, Writer

    ident = collect.identity(db)
    header = Header(
        version=VERSION,
        pgdoctor=__version__,
        started=round(time.time(), 3),
        every_s=every_s,
        server=ServerId(
            version=db.server_version,
            version_num=db.server_version_num,
            system_identifier=ident.system_identifier,
            address=collect.address(db),
            database=ident.database,
            current_user=str(db.conn.info.user),
        ),
        thresholds=thresholds,
        pgbouncer=collect.pgbouncer_version(console) if console is not None else None,
    )
    return Writer(output, header, limit)


def _loop(
    db: Database,
    console: Console | None,
    writer: Writer,
    every_s: float,
    for_s: float | None,
    thresholds: dict[str, Any],
) -> tuple[int, str]:
    """Tick until --for is over, the file is full, or Ctrl-C / SIGTERM: (ticks written, why it stopped)."""
    import signal
    from dataclasses import replace

    from pgdoctor.analyze.record import Tick, severities, tick_of
    from pgdoctor.collect import record as collect
    from pgdoctor.snapshot.recording import tick_line

    info = collect.server(db)
    previous: dict[str, str] = {}
    ticks = 0
    start = time.monotonic()
    # SIGTERM (a service manager, `timeout`, kill) stops the recording as Ctrl-C does: exit 0
    old = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while True:
            at = time.time()
            try:
                data = collect.read(db, info)
            except PgDoctorError as exc:
                if exc.exit_code is not ExitCode.QUERY_FAILED:
                    raise  # the connection is gone: the recording so far stays readable
                tick = Tick(t=round(at, 3), error=exc.message)
            else:
                pools, pgb_error = _pools(console)
                tick = tick_of(data, at, thresholds, previous, pools)
                if pgb_error:
                    tick = replace(tick, pgbouncer_error=pgb_error)
                previous = severities(tick)
            if not writer.write(tick_line(tick)):
                return ticks, f"stopped: {writer.path} reached --max-size ({writer.max_size:,} bytes)"
            ticks += 1
            next_at = start + ticks * every_s
            if for_s is not None and next_at - start >= for_s - 1e-9:
                return ticks, "done"
            delay = next_at - time.monotonic()
            if delay > 0:
                db.sleep(delay)
            else:  # a read slower than --every: the next tick now, no burst to catch up
                start -= delay
    except KeyboardInterrupt:
        return ticks, "stopped"
    finally:
        signal.signal(signal.SIGTERM, old)


def _pools(console: Console | None) -> tuple[list[Any] | None, str | None]:
    if console is None:
        return None, None
    from pgdoctor.collect import record as collect

    try:
        return collect.pools(console), None
    except PgDoctorError as exc:
        return [], exc.message
