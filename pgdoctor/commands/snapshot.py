"""`pgdoctor snapshot`: save everything the commands read, for offline analysis."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pgdoctor.options import DsnOpt, TimeoutOpt


def snapshot(
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write (JSON).")],
    dsn: DsnOpt = None,
    timeout: TimeoutOpt = 5.0,
) -> None:
    """Save what every command reads as one versioned JSON file; read it back with --snapshot FILE."""
    from pgdoctor.db import connect
    from pgdoctor.snapshot import capture, save

    with connect(dsn, timeout) as db:
        document = capture(db)
    save(document, output)
    names = ", ".join(document["datasets"])
    print(f"saved {output}: PostgreSQL {document['server']['version']}, {names}", file=sys.stderr)
