"""The `pgdoctor` command line: typer commands, and one place that turns errors into exit codes."""

from __future__ import annotations

import os
import sys
from importlib import import_module
from typing import Annotated, Any

import typer
import typer.main

from pgdoctor import __version__
from pgdoctor.errors import EXIT_CODES_HELP, ExitCode, PgDoctorError
from pgdoctor.options import EVERY_COMMAND, Command, harden

# Every command: its name, and the module and function that define it. A run imports and builds only
# the command it names (typer turns each function's options into a click command, which costs some ms
# each); `pgdoctor`, `pgdoctor --help` and an unknown name build them all (pgdoctor.cli.app).
COMMANDS = {
    "triage": ("pgdoctor.commands.triage", "triage"),
    "connections": ("pgdoctor.commands.connections", "connections"),
    "locks": ("pgdoctor.commands.locks", "locks"),
    "slow-queries": ("pgdoctor.commands.slow_queries", "slow_queries"),
    "recommend": ("pgdoctor.commands.recommend", "recommend"),
    "pgbouncer": ("pgdoctor.commands.pgbouncer", "pgbouncer"),
    "snapshot": ("pgdoctor.commands.snapshot", "snapshot"),
    "record": ("pgdoctor.commands.record", "record"),
    "timeline": ("pgdoctor.commands.timeline", "timeline"),
}

# The command to run first, mid-incident: what `pgdoctor` alone names.
FIRST = "triage -d postgresql://USER@HOST:5432/DBNAME"

# Two or three examples of real use, at the end of each command's --help (tests/test_docs.py parses
# each one against the command line, so an example cannot go stale).
EXAMPLES: dict[str, list[str]] = {
    "connections": [
        "pgdoctor connections -d postgresql://monitor@db1:5432/app",
        "pgdoctor connections --target prod --sessions --by user",
        "pgdoctor connections --ps --data-dir /var/lib/postgresql/18/main --by user",
    ],
    "locks": [
        "pgdoctor locks -d service=prod",
        "pgdoctor locks --target prod --min-wait 1 --all",
        "pgdoctor locks --snapshot incident.json -f json",
    ],
    "slow-queries": [
        "pgdoctor slow-queries -d service=prod --sort mean -n 20",
        "pgdoctor slow-queries --target prod --interval 30s",
        "pgdoctor slow-queries --snapshot incident.json --database app -f markdown",
    ],
    "recommend": [
        "pgdoctor recommend --ram 128G --cpus 32 --app web=16x8 --app worker=4",
        "pgdoctor recommend --target prod -f conf",
        "pgdoctor recommend --ram 64G --app training=1000 --pgbouncer -f pgbouncer",
    ],
    "pgbouncer": [
        "pgdoctor pgbouncer -d postgresql://stats@pgb1:6432/pgbouncer",
        "pgdoctor pgbouncer -d postgresql://stats@pgb1:6432/pgbouncer --postgres-dsn service=prod --watch",
        "pgdoctor pgbouncer --snapshot incident.json -f json",
    ],
    "snapshot": [
        "pgdoctor snapshot -d service=prod -o incident.json",
        "pgdoctor snapshot --target prod --pgbouncer-dsn postgresql://stats@pgb1:6432/pgbouncer -o -",
    ],
    "record": [
        "pgdoctor record -d service=prod -o incident.jsonl --every 5s --for 30m",
        "pgdoctor record --target prod --pgbouncer-dsn postgresql://stats@pgb1:6432/pgbouncer -o pgb.jsonl",
    ],
    "timeline": [
        "pgdoctor timeline incident.jsonl",
        "pgdoctor timeline incident.jsonl --html incident.html --utc",
        "pgdoctor timeline incident.jsonl -f csv --rows 0",
    ],
    "triage": [
        "pgdoctor triage -d service=prod --pgbouncer-dsn postgresql://stats@pgb1:6432/pgbouncer",
        "pgdoctor triage --target prod --fail-on critical -f json",
        "pgdoctor triage --snapshot incident.json -f markdown",
    ],
}


def epilog(name: str) -> str:
    """The examples as click writes them unwrapped (\\b)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in EXAMPLES.get(name, []))


def short_help() -> str:
    """What `pgdoctor` alone prints: where to start."""
    return (
        f"pgdoctor {__version__}: PostgreSQL diagnostics for the person on call.\n\n"
        f"Start with:  pgdoctor {FIRST}\n"
        "             (every diagnosis in one read, one problem per cause, what to do first at the top)\n"
        f"Commands:    {', '.join(COMMANDS)}\n"
        "More:        pgdoctor --help, pgdoctor COMMAND --help\n"
    )


def _version(value: bool) -> None:
    if value:
        print(f"pgdoctor {__version__}")
        raise typer.Exit(0)


class _App(typer.Typer):
    """Typer, with every numeric option checked in one place (pgdoctor.options.harden)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return harden(typer.main.get_command(self))(*args, **kwargs)


def _group(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_version, help="Print pgdoctor's version and exit."
        ),
    ] = False,
) -> None:
    """The command line's own options; a group of one command stays a group (`pgdoctor NAME …`)."""


def build(names: list[str]) -> _App:
    """The command line with these commands (see COMMANDS)."""
    cli = _App(
        name="pgdoctor",
        help=f"PostgreSQL diagnostics for the person on call (pgdoctor {__version__}).\n\n"
        f"Start with: pgdoctor {FIRST}\n\n{EXIT_CODES_HELP}",
        no_args_is_help=True,
        add_completion=True,  # --install-completion, --show-completion: measured free (benchmarks/README.md)
        pretty_exceptions_enable=False,
        rich_markup_mode=None,  # plain click help: rich is not imported just to print --help
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    for name in names:
        module, function = COMMANDS[name]
        cli.command(name=name, cls=Command, epilog=epilog(name))(getattr(import_module(module), function))
    cli.callback()(_group)
    return cli


def for_arguments(argv: list[str]) -> _App:
    """The command line a run with these arguments needs: the command it names, else all of them."""
    return build([argv[0]] if argv and argv[0] in COMMANDS else list(COMMANDS))


def _every_command() -> list[Any]:
    group: Any = typer.main.get_command(build(list(COMMANDS)))
    return list(group.commands.values())


EVERY_COMMAND.append(_every_command)


def __getattr__(name: str) -> Any:
    """`pgdoctor.cli.app`: the whole command line, every command built (tests, docs)."""
    if name == "app":
        globals()["app"] = whole = build(list(COMMANDS))
        return whole
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class OutputClosed(Exception):
    """stdout's reader went away. Not an OSError, so neither click nor rich turns it into exit 1."""


class _Stdout:
    """sys.stdout, with a closed pipe raised as OutputClosed."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    CHUNK = 8192  # a large write that the pipe's reader abandons halfway ends without an error

    def write(self, text: str | bytes) -> int:
        # click's echo may hand over bytes (it takes this wrapper for a binary stream)
        target = self._stream.buffer if isinstance(text, bytes) else self._stream
        if isinstance(text, bytes):
            self._stream.flush()
        try:
            for start in range(0, len(text), self.CHUNK):
                target.write(text[start : start + self.CHUNK])
        except BrokenPipeError:
            raise OutputClosed from None
        return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise OutputClosed from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


# Shell completion asks through this variable (typer's protocol: complete_bash, source_bash, …), whatever
# the program's path; `pgdoctor --show-completion` prints the script that sets it.
COMPLETE_VAR = "_PGDOCTOR_COMPLETE"


def fail(message: str, code: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console entry point (argv: the arguments after the program name; default sys.argv[1:])."""
    real_stdout = sys.stdout
    sys.stdout = _Stdout(real_stdout)
    try:
        args = sys.argv[1:] if argv is None else argv
        if not args and not os.environ.get(COMPLETE_VAR):
            print(short_help(), end="")
            sys.exit(ExitCode.USAGE)
        result = for_arguments(args)(
            args=args, prog_name="pgdoctor", complete_var=COMPLETE_VAR, standalone_mode=False
        )
        sys.stdout.flush()  # a pipe closed after the last write shows here, not at interpreter exit
    except (OutputClosed, BrokenPipeError):
        # the reader went away (| head): nothing more can be said on stdout, and the interpreter must
        # not fail again flushing it at exit; an exit code of its own, not 0 (all seen) nor 1 (findings)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, real_stdout.fileno())
        sys.stdout = real_stdout
        sys.exit(ExitCode.BROKEN_PIPE)
    except PgDoctorError as exc:
        fail(exc.message, int(exc.exit_code))
    except (KeyboardInterrupt, typer.Abort):
        fail("interrupted", int(ExitCode.INTERRUPTED))
    except typer.TyperException as exc:  # click's usage errors: bad option, bad value
        exc.show()  # type: ignore[attr-defined]
        sys.exit(ExitCode.USAGE)
    if result == ExitCode.INTERRUPTED:  # typer turns Ctrl-C into Exit(130)
        fail("interrupted", int(ExitCode.INTERRUPTED))
    sys.exit(result if isinstance(result, int) else 0)
