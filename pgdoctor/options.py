"""Options every command shares, as Annotated types, and the glue from options to data and exit codes."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from pgdoctor.errors import ExitCode, PgDoctorError
from pgdoctor.render.formats import Format

T = TypeVar("T")


class FailOn(StrEnum):
    NEVER = "never"
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


DsnOpt = Annotated[
    str | None,
    typer.Option(
        "--dsn",
        "-d",
        help="libpq conninfo or URI (SQLAlchemy URLs accepted). Default: $DATABASE_URL, then libpq's "
        "PG* variables, service file and ~/.pgpass.",
        show_default=False,
    ),
]
SnapshotOpt = Annotated[
    Path | None,
    typer.Option("--snapshot", "-s", help="Read a saved snapshot (pgdoctor snapshot) instead of a server."),
]
FormatOpt = Annotated[
    Format,
    typer.Option("--format", "-f", help="auto = table on a terminal, plain in a pipe.", case_sensitive=False),
]
TimeoutOpt = Annotated[
    float,
    typer.Option("--timeout", min=0.1, help="statement_timeout for pgdoctor's queries, in seconds."),
]
FailOnOpt = Annotated[
    FailOn,
    typer.Option(
        "--fail-on", help="Exit 1 when a finding is at or above this severity.", case_sensitive=False
    ),
]
FullOpt = Annotated[bool, typer.Option("--full", help="Show whole query texts.")]


def obtain(name: str, cls: type[T], dsn: str | None, snapshot: Path | None, timeout: float) -> T:
    """The dataset `name`: from the snapshot file when given, else collected live."""
    if snapshot is not None:
        if dsn:
            raise PgDoctorError("give either --dsn or --snapshot, not both", ExitCode.USAGE)
        from pgdoctor.snapshot import load_dataset

        return load_dataset(snapshot, name, cls)
    from pgdoctor.db import connect
    from pgdoctor.snapshot import collector

    with connect(dsn, timeout) as db:
        result: T = collector(name)(db)
        return result


def exit_code(findings: list[Any], fail_on: FailOn) -> int:
    """1 when any finding reaches --fail-on, else 0."""
    if fail_on is FailOn.NEVER:
        return 0
    threshold = {"info": 0, "warning": 1, "critical": 2}[fail_on.value]
    return int(ExitCode.FINDINGS) if any(f.severity.rank >= threshold for f in findings) else 0
