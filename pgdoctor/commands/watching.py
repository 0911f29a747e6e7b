"""`--watch [INTERVAL]` for `connections`, `locks` and `pgbouncer`: the command's read and analysis again
every INTERVAL on its one connection, until Ctrl-C, with what changed since the last tick and the start.

A tick is the command's own read and nothing more: the server's settings and role are read once, at the
start; each tick then reads pg_stat_activity as the command does (`locks`: pg_locks too, only when someone
waits, as the command does; `pgbouncer`: its SHOW commands). Between ticks the connection idles with
`Database.sleep`, which keeps idle_session_timeout from ending it. Output: a live screen (rich) on a
terminal; one summary line per tick in a pipe or with --format plain; one JSON document per line with
--format json. Ctrl-C ends it with exit 0, the connection closed.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer

from pgdoctor.errors import ExitCode, PgDoctorError
from pgdoctor.render.formats import Format

if TYPE_CHECKING:
    from pgdoctor.analyze.connections import ConnectionsReport
    from pgdoctor.analyze.locks import LocksReport
    from pgdoctor.analyze.pgbouncer import PgBouncerReport
    from pgdoctor.analyze.sessions import ViaPgBouncer
    from pgdoctor.analyze.watch import Delta, Picture
    from pgdoctor.collect.connections import ConnectionsData
    from pgdoctor.collect.locks import LocksData
    from pgdoctor.collect.pgbouncer import PgBouncerData
    from pgdoctor.render.document import Document

# A tick is a whole read and analysis (not the --sample's slim 100 ms tick): twice a second at most; and
# a watch is watched, so at most an hour between ticks.
MIN_WATCH_S = 0.5
MAX_WATCH_S = 3600.0


def parse_interval(text: str) -> float:
    """'2s', '500ms', '1m' or plain seconds -> seconds; else a usage error."""
    from pgdoctor.durations import parse

    return parse(text, "--watch", MIN_WATCH_S, MAX_WATCH_S, "2s, 5s or 1m")


def refuse(fmt: Format, **others: Any) -> None:
    """--watch reads a live server again and again: not with a snapshot, a sample or the process list;
    and it draws a screen, lines or JSON lines, not a markdown or CSV document nor an OpenMetrics
    exposition (one per run, for a scraper or a textfile collector: run the command from cron instead)."""
    for name, value in others.items():
        if value:
            raise PgDoctorError(f"--watch: not with --{name.replace('_', '-')}", ExitCode.USAGE)
    if fmt in (Format.MARKDOWN, Format.CSV, Format.OPENMETRICS):
        raise PgDoctorError(
            f"--watch: not with --format {fmt.value} (a live screen, plain lines or json lines)",
            ExitCode.USAGE,
        )


@dataclass(frozen=True)
class Frame:
    """One tick: what the watch compares, and the command's report as JSON and as a document."""

    picture: Picture
    to_json: Callable[[], dict[str, Any]]
    document: Callable[[], Document]


class _Output:
    """Where ticks go: a live screen, summary lines or JSON lines."""

    def __init__(self, fmt: Format, interval_s: float) -> None:
        self.interval_s = interval_s
        self.json = fmt is Format.JSON
        self.live: Any = None
        if not self.json and fmt in (Format.AUTO, Format.TABLE) and sys.stdout.isatty():
            import os

            from rich.console import Console
            from rich.live import Live

            console = Console(highlight=False, no_color="NO_COLOR" in os.environ)
            self.live = Live(console=console, auto_refresh=False, vertical_overflow="crop")
            self.live.start()

    def show(self, frame: Frame, delta: Delta) -> None:
        from pgdoctor.render import watch as render

        if self.live is not None:
            self.live.update(
                render.screen(frame.document(), frame.picture, delta, self.interval_s), refresh=True
            )
            return
        if self.json:
            payload = {**frame.to_json(), "watch": render.watch_json(frame.picture, delta, self.interval_s)}
            line = json.dumps(payload, ensure_ascii=False)
        else:
            line = render.summary_line(frame.picture, delta)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()  # a log reader sees each tick as it comes

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()


def run(interval_s: float, fmt: Format, step: Callable[[], Frame], sleep: Callable[[float], None]) -> None:
    """Tick every `interval_s` (a slow read is not caught up with a burst) until Ctrl-C; then exit 0."""
    from pgdoctor.analyze.watch import Watch

    watch = Watch()
    out: _Output | None = None
    try:
        out = _Output(fmt, interval_s)
        next_at = time.monotonic()
        while True:
            frame = step()
            out.show(frame, watch.add(frame.picture))
            next_at += interval_s
            delay = next_at - time.monotonic()
            if delay > 0:
                sleep(delay)
            else:
                next_at = time.monotonic()
    except KeyboardInterrupt:
        pass
    finally:
        if out is not None:
            out.stop()


def watch_connections(
    text: str,
    dsn: str | None,
    pgbouncer_dsn: str | None,
    fmt: Format,
    timeout: float,
    report_of: Callable[[ConnectionsData, dict[int, ViaPgBouncer] | None], ConnectionsReport],
    document: Callable[[ConnectionsReport], Document],
) -> None:
    """`connections --watch`: the settings once, then pg_stat_activity and the analysis each tick (with
    --pgbouncer-dsn, PgBouncer's clients and servers right after, on its console's one connection)."""
    from contextlib import ExitStack

    from pgdoctor.analyze.pgbouncer_rows import via_map
    from pgdoctor.analyze.watch import connections_picture
    from pgdoctor.collect.activity import collect_activity
    from pgdoctor.collect.connections import SETTINGS, capture
    from pgdoctor.collect.pgbouncer import connect_console, read_console
    from pgdoctor.collect.server import collect_server
    from pgdoctor.db import connect
    from pgdoctor.render import connections as render

    interval = parse_interval(text)
    with suppress(KeyboardInterrupt), ExitStack() as stack:
        db = stack.enter_context(connect(dsn, timeout))
        console = stack.enter_context(connect_console(pgbouncer_dsn, timeout)) if pgbouncer_dsn else None
        server = collect_server(db, SETTINGS)

        def step() -> Frame:
            data = capture(db, server, collect_activity(db))
            report = report_of(data, via_map(read_console(console)) if console is not None else None)
            return Frame(
                connections_picture(report, time.time()),
                lambda: render.to_json(report),
                lambda: document(report),
            )

        run(interval, fmt, step, db.sleep)
    raise typer.Exit(0)


def watch_locks(
    text: str,
    dsn: str | None,
    fmt: Format,
    timeout: float,
    read: Callable[[Any, Any], LocksData],
    report_of: Callable[[LocksData], LocksReport],
    render_json: Callable[[LocksReport], dict[str, Any]],
    document: Callable[[LocksReport], Document],
) -> None:
    """`locks --watch`: the settings once, then each tick what `locks` reads (`read(db, server)`)."""
    from pgdoctor.analyze.watch import locks_picture
    from pgdoctor.collect.locks import SETTINGS
    from pgdoctor.collect.server import collect_server
    from pgdoctor.db import connect

    interval = parse_interval(text)
    with suppress(KeyboardInterrupt), connect(dsn, timeout) as db:
        server = collect_server(db, SETTINGS)

        def step() -> Frame:
            report = report_of(read(db, server))
            return Frame(
                locks_picture(report, time.time()), lambda: render_json(report), lambda: document(report)
            )

        run(interval, fmt, step, db.sleep)
    raise typer.Exit(0)


def watch_pgbouncer(
    text: str,
    dsn: str | None,
    postgres_dsn: str | None,
    fmt: Format,
    timeout: float,
    report_of: Callable[[PgBouncerData], PgBouncerReport],
) -> None:
    """`pgbouncer --watch`: the admin console's SHOWs each tick on its one connection (and, with
    --postgres-dsn, pg_stat_activity on the server's one connection, its settings read once)."""
    import dataclasses
    from contextlib import ExitStack

    from pgdoctor.analyze.watch import pgbouncer_picture
    from pgdoctor.collect.activity import collect_activity
    from pgdoctor.collect.connections import SETTINGS, capture
    from pgdoctor.collect.pgbouncer import connect_console, read_console
    from pgdoctor.collect.server import collect_server
    from pgdoctor.db import connect
    from pgdoctor.render import pgbouncer as render

    interval = parse_interval(text)
    with suppress(KeyboardInterrupt), ExitStack() as stack:
        db = stack.enter_context(connect(postgres_dsn, timeout)) if postgres_dsn else None
        server = collect_server(db, SETTINGS) if db is not None else None
        console = stack.enter_context(connect_console(dsn, timeout))

        def step() -> Frame:
            data = read_console(console)
            if db is not None and server is not None:
                data = dataclasses.replace(data, postgres=capture(db, server, collect_activity(db)))
            report = report_of(data)
            return Frame(
                pgbouncer_picture(report, time.time()),
                lambda: render.to_json(report),
                lambda: render.document(report),
            )

        run(interval, fmt, step, db.sleep if db is not None else time.sleep)
    raise typer.Exit(0)
