"""Options every command shares, as Annotated types, and the glue from options to data and exit codes."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from pgdoctor.errors import ExitCode, PgDoctorError
from pgdoctor.render.formats import Format

if TYPE_CHECKING:
    from pgdoctor.db import Database
    from pgdoctor.render.document import Document

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
PgBouncerDsnOpt = Annotated[
    str | None,
    typer.Option(
        "--pgbouncer-dsn",
        help="PgBouncer's admin console (database `pgbouncer`; a role in admin_users or stats_users), "
        "e.g. postgresql://USER@HOST:6432/pgbouncer. pgdoctor sends it SHOW commands only.",
        show_default=False,
    ),
]
PostgresDsnOpt = Annotated[
    str | None,
    typer.Option(
        "--postgres-dsn",
        help="The PostgreSQL server behind PgBouncer (its own port, not PgBouncer's): its backends' "
        "transactions and its connection slots.",
        show_default=False,
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


def emit_report(fmt: Format, to_json: Callable[[], Any], document: Callable[[], Document]) -> None:
    """Print a command's result: its JSON contract for --format json, else its document."""
    from pgdoctor.render.document import emit, emit_json

    if fmt is Format.JSON:
        emit_json(to_json())
    else:
        emit(document(), fmt)


def exit_code(findings: list[Any], fail_on: FailOn) -> int:
    """1 when a finding reaches --fail-on; else 4 when the role could not see everything; else 0."""
    if fail_on is not FailOn.NEVER:
        threshold = {"info": 0, "warning": 1, "critical": 2}[fail_on.value]
        if any(f.severity.rank >= threshold for f in findings):
            return int(ExitCode.FINDINGS)
    if any(f.code == "insufficient_privilege" for f in findings):
        return int(ExitCode.PRIVILEGE)
    return 0
