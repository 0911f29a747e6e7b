"""The `pgdoctor` command line: typer commands, and one place that turns errors into exit codes."""

from __future__ import annotations

import os
import sys
from importlib import import_module
from typing import Any

import typer
import typer.main

from pgdoctor.errors import EXIT_CODES_HELP, ExitCode, PgDoctorError
from pgdoctor.options import harden

# Every command: its name, and the module and function that define it. A run imports and builds only
# the command it names (typer turns each function's options into a click command, which costs some ms
# each); `pgdoctor`, `pgdoctor --help` and an unknown name build them all (pgdoctor.cli.app).
COMMANDS = {
    "connections": ("pgdoctor.commands.connections", "connections"),
    "locks": ("pgdoctor.commands.locks", "locks"),
    "slow-queries": ("pgdoctor.commands.slow_queries", "slow_queries"),
    "recommend": ("pgdoctor.commands.recommend", "recommend"),
    "pgbouncer": ("pgdoctor.commands.pgbouncer", "pgbouncer"),
    "snapshot": ("pgdoctor.commands.snapshot", "snapshot"),
}


class _App(typer.Typer):
    """Typer, with every numeric option checked in one place (pgdoctor.options.harden)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return harden(typer.main.get_command(self))(*args, **kwargs)


def _group() -> None:
    """A group of one command stays a group (`pgdoctor NAME …`), as with all of them."""


def build(names: list[str]) -> _App:
    """The command line with these commands (see COMMANDS)."""
    cli = _App(
        name="pgdoctor",
        help=f"PostgreSQL diagnostics for the person on call.\n\n{EXIT_CODES_HELP}",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,  # plain click help: rich is not imported just to print --help
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    for name in names:
        module, function = COMMANDS[name]
        cli.command(name=name)(getattr(import_module(module), function))
    if len(names) == 1:
        cli.callback()(_group)
    return cli


def for_arguments(argv: list[str]) -> _App:
    """The command line a run with these arguments needs: the command it names, else all of them."""
    return build([argv[0]] if argv and argv[0] in COMMANDS else list(COMMANDS))


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


def fail(message: str, code: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console entry point (argv: the arguments after the program name; default sys.argv[1:])."""
    real_stdout = sys.stdout
    sys.stdout = _Stdout(real_stdout)
    try:
        args = sys.argv[1:] if argv is None else argv
        result = for_arguments(args)(args=args, standalone_mode=False)
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
