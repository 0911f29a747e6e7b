"""`pgdoctor snapshot`: save everything the commands read, for offline analysis."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from pgdoctor.options import DsnOpt, PgBouncerDsnOpt, TimeoutOpt


def snapshot(
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="File to write (JSON), - for standard output. A regular file is replaced atomically "
            "(through symlinks); a device or FIFO is written through. Checked before connecting.",
        ),
    ],
    dsn: DsnOpt = None,
    timeout: TimeoutOpt = 5.0,
    pgbouncer_dsn: PgBouncerDsnOpt = None,
    sample: Annotated[
        str | None,
        typer.Option(
            "--sample",
            metavar="DURATION",
            help="Also sample pg_stat_activity for DURATION (as `connections --sample`) and keep the "
            "samples: `connections --snapshot FILE` then gives the same report.",
        ),
    ] = None,
) -> None:
    """Save what every command reads as one versioned JSON file; read it back with --snapshot FILE."""
    from pgdoctor.db import connect
    from pgdoctor.snapshot import Output, add_pgbouncer, capture

    seconds = None
    if sample is not None:
        from pgdoctor.commands.sampling import SAMPLE_DATASET, parse_sample
        from pgdoctor.commands.sampling import sample as take_sample

        seconds = parse_sample(sample)
    target = Output(output)  # a bad path fails here, before connecting
    try:
        with connect(dsn, timeout) as db:
            document = capture(db)
            if seconds is not None:
                from pgdoctor.serde import to_jsonable

                progress = output != "-" and sys.stderr.isatty()
                data, _ = take_sample(db, seconds, progress=progress, keep_ticks=True)
                document["datasets"][SAMPLE_DATASET] = to_jsonable(data)
        if pgbouncer_dsn:
            # the server behind PgBouncer is the one just captured: `pgbouncer --snapshot` compares with it
            add_pgbouncer(document, pgbouncer_dsn, timeout)
        target.write(document)
    finally:
        target.discard()
    names = ", ".join(document["datasets"])
    print(f"saved {output}: PostgreSQL {document['server']['version']}, {names}", file=sys.stderr)
