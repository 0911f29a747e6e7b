"""`--sample DURATION` for `connections` and `snapshot`: the sampling loop, its progress bar, Ctrl-C."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from pgdoctor.errors import ExitCode, PgDoctorError
from pgdoctor.options import FailOn, emit_report, exit_code, metrics
from pgdoctor.render.formats import Format

if TYPE_CHECKING:
    from pgdoctor.analyze.sample import SampleAnalysis
    from pgdoctor.collect.sample import SampleData
    from pgdoctor.db import Database

# "A few seconds of reads" tell a steady state from a moment; a sample is meant to last seconds to
# minutes, not to be a monitoring daemon.
MIN_SAMPLE_S = 0.5
MAX_SAMPLE_S = 600.0
SAMPLE_DATASET = "sample"

SAMPLE_HELP = (
    "Read pg_stat_activity every 100 ms for DURATION (5s, 30s, 2m; at most 10m) and report per "
    "application and client address: time per class, connections held (plateau), transactions "
    "(p50/p95/max, idle-in-transaction share, rate). Finds app_pool_saturated and "
    "slow_work_in_transaction. Ctrl-C reports what was sampled until then."
)


def parse_sample(text: str, option: str = "--sample") -> float:
    """'5s', '2m', '500ms' or plain seconds -> seconds; else a usage error."""
    from pgdoctor.durations import parse

    return parse(text, option, MIN_SAMPLE_S, MAX_SAMPLE_S)


class _Bar:
    """rich's progress bar on a terminal with what was seen so far; nothing in a pipe."""

    def __init__(self, show: bool, total: float) -> None:
        self.progress: Any = None
        self.task: Any = None
        if show:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("sampling"),
                BarColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.description}"),
                console=Console(stderr=True),
                transient=True,
            )
            self.task = self.progress.add_task("", total=total)
            self.progress.start()

    def update(self, done: float, seen: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=done, description=seen)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def show_progress(fmt: Format) -> bool:
    return fmt is not Format.JSON and sys.stderr.isatty() and sys.stdout.isatty()


def sample(
    db: Database, duration_s: float, *, progress: bool, keep_ticks: bool
) -> tuple[SampleData, SampleAnalysis]:
    """Sample for `duration_s` (or until Ctrl-C): the data (its ticks when `keep_ticks`) and the analysis,
    fed tick by tick."""
    from pgdoctor.analyze.sample import SampleAnalysis
    from pgdoctor.collect.sample import INTERVAL_S, SampleData, Sampler, Tick

    sampler = Sampler(db)
    server = sampler.server()
    database = sampler.database()
    analysis = SampleAnalysis()
    ticks: list[Tick] = []
    interrupted = False
    bar = _Bar(progress, duration_s)

    def take(last: bool) -> None:
        tick = sampler.tick(force_xacts=last)
        analysis.add(tick)
        if keep_ticks:
            ticks.append(tick)

    start = time.monotonic()
    next_at = start
    try:
        while True:
            elapsed = time.monotonic() - start
            last = elapsed >= duration_s
            take(last)
            bar.update(min(elapsed, duration_s), analysis.seen())
            if last:
                break
            next_at += INTERVAL_S
            delay = min(next_at, start + duration_s) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.monotonic()  # a slow read: no burst of reads to catch up
    except KeyboardInterrupt:
        interrupted = True
        # the transaction counters once more, if the connection still answers (interrupted mid-read,
        # it may not: what was sampled until then is kept all the same)
        with contextlib.suppress(Exception):
            take(True)
    finally:
        bar.stop()
    data = SampleData(
        server=server,
        database=database,
        interval_s=INTERVAL_S,
        duration_s=duration_s,
        interrupted=interrupted,
        ticks=ticks,
    )
    return data, analysis


def has_sample(snapshot: Path) -> bool:
    from pgdoctor.snapshot import read

    return SAMPLE_DATASET in read(snapshot, keep=True).datasets  # kept for the load that follows


def connections_sample(
    dsn: str | None, snapshot: Path | None, duration: str | None, fmt: Format, timeout: float, fail_on: FailOn
) -> None:
    """`connections --sample DURATION` live, or `connections --snapshot` of a `snapshot --sample` file."""
    from pgdoctor.render import sample as render

    if snapshot is not None:
        if duration is not None:
            raise PgDoctorError(
                "--sample reads a live server: not with --snapshot (a snapshot taken with "
                "`pgdoctor snapshot --sample` holds its sample)",
                ExitCode.USAGE,
            )
        if dsn:
            raise PgDoctorError("give either --dsn or --snapshot, not both", ExitCode.USAGE)
        from pgdoctor.analyze.sample import analyze_sample
        from pgdoctor.collect.sample import SampleData
        from pgdoctor.snapshot import load_dataset

        report = analyze_sample(load_dataset(snapshot, SAMPLE_DATASET, SampleData))
    else:
        assert duration is not None
        seconds = parse_sample(duration)
        from pgdoctor.db import connect

        with connect(dsn, timeout) as db:
            data, analysis = sample(db, seconds, progress=show_progress(fmt), keep_ticks=False)
        report = analysis.finish(data)

    emit_report(
        fmt,
        lambda: render.to_json(report),
        lambda: render.document(report),
        metrics("connections", report),
    )
    raise typer.Exit(exit_code(report.findings, fail_on))
