"""Options every command shares, as Annotated types, and the glue from options to data and exit codes."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from pgdoctor.errors import ExitCode, PgDoctorError
from pgdoctor.exitcodes import exit_code as exit_code  # noqa: PLC0414 (re-exported for the commands)
from pgdoctor.render.formats import Format

if TYPE_CHECKING:
    from pgdoctor.db import Database
    from pgdoctor.render.document import Document

T = TypeVar("T")
U = TypeVar("U")


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


def obtain(
    name: str,
    cls: type[T],
    dsn: str | None,
    snapshot: Path | None,
    timeout: float,
    live: Callable[[Database], T] | None = None,
) -> T:
    """The dataset `name`: from the snapshot file when given, else collected live (by `live`, when the
    command collects with options of its own, else by the dataset's registered collector)."""
    if snapshot is not None:
        if dsn:
            raise PgDoctorError("give either --dsn or --snapshot, not both", ExitCode.USAGE)
        from pgdoctor.snapshot import load_dataset

        return load_dataset(snapshot, name, cls)
    from pgdoctor.db import connect
    from pgdoctor.snapshot import collector

    with connect(dsn, timeout) as db:
        result: T = (live or collector(name))(db)
        return result


def obtain_pair(
    first: tuple[str, type[T]], second: tuple[str, type[U]], dsn: str | None, snapshot: Path | None, t: float
) -> tuple[T, U]:
    """Two datasets (name, class), as `obtain` gets one: from the snapshot, or live over one connection."""
    if snapshot is not None:
        return obtain(*first, dsn, snapshot, t), obtain(*second, dsn, snapshot, t)
    from pgdoctor.db import connect
    from pgdoctor.snapshot import collector

    with connect(dsn, t) as db:
        return collector(first[0])(db), collector(second[0])(db)


def emit_report(fmt: Format, to_json: Callable[[], Any], document: Callable[[], Document]) -> None:
    """Print a command's result: its JSON contract for --format json, else its document."""
    from pgdoctor.render.document import emit, emit_json

    if fmt is Format.JSON:
        emit_json(to_json())
    else:
        emit(document(), fmt)
