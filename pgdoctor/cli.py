"""The `pgdoctor` command line: typer commands, and one place that turns errors into exit codes."""

from __future__ import annotations

import sys

import typer

from pgdoctor.commands.connections import connections
from pgdoctor.commands.locks import locks
from pgdoctor.commands.pgbouncer import pgbouncer
from pgdoctor.commands.recommend import recommend
from pgdoctor.commands.slow_queries import slow_queries
from pgdoctor.commands.snapshot import snapshot
from pgdoctor.errors import EXIT_CODES_HELP, ExitCode, PgDoctorError

app = typer.Typer(
    name="pgdoctor",
    help=f"PostgreSQL diagnostics for the person on call.\n\n{EXIT_CODES_HELP}",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: rich is not imported just to print --help
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command()(connections)
app.command()(locks)
app.command(name="slow-queries")(slow_queries)
app.command()(recommend)
app.command()(pgbouncer)
app.command()(snapshot)


def fail(message: str, code: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def main() -> None:
    """Console entry point."""
    try:
        result = app(standalone_mode=False)
    except PgDoctorError as exc:
        fail(exc.message, int(exc.exit_code))
    except (KeyboardInterrupt, typer.Abort):
        fail("interrupted", int(ExitCode.INTERRUPTED))
    except typer.TyperException as exc:  # click's usage errors: bad option, bad value
        exc.show()  # type: ignore[attr-defined]
        sys.exit(ExitCode.USAGE)
    except BrokenPipeError:
        sys.exit(0)
    if result == ExitCode.INTERRUPTED:  # typer turns Ctrl-C into Exit(130)
        fail("interrupted", int(ExitCode.INTERRUPTED))
    sys.exit(result if isinstance(result, int) else 0)
