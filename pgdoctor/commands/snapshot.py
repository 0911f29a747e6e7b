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
) -> None:
    """Save what every command reads as one versioned JSON file; read it back with --snapshot FILE."""
    from pgdoctor.db import connect
    from pgdoctor.snapshot import Output, add_pgbouncer, capture

    target = Output(output)  # a bad path fails here, before connecting
    try:
        with connect(dsn, timeout) as db:
            document = capture(db)
        if pgbouncer_dsn:
            # the server behind PgBouncer is the one just captured: `pgbouncer --snapshot` compares with it
            add_pgbouncer(document, pgbouncer_dsn, timeout)
        target.write(document)
    finally:
        target.discard()
    names = ", ".join(document["datasets"])
    print(f"saved {output}: PostgreSQL {document['server']['version']}, {names}", file=sys.stderr)
