"""Options every command shares, as Annotated types, and the glue from options to data and exit codes."""

from __future__ import annotations

import math
import sys
import typing
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer._click import types as click_types  # loaded by typer itself
from typer._click.core import ParameterSource
from typer.core import TyperCommand, TyperOption

from pgdoctor.config import envvar_name
from pgdoctor.errors import ExitCode, PgDoctorError
from pgdoctor.exitcodes import exit_code as exit_code  # noqa: PLC0414 (re-exported for the commands)
from pgdoctor.render.formats import Format

if TYPE_CHECKING:
    from pgdoctor.db import Database
    from pgdoctor.render.document import Document

ENVIRONMENT = ParameterSource.ENVIRONMENT
DEFAULT_MAP = ParameterSource.DEFAULT_MAP

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
        help="libpq conninfo or URI, passed to libpq as written (SQLAlchemy +driver URLs are converted). "
        "Default: the config file's dsn (--target), then $DATABASE_URL, then libpq's PG* variables, service "
        "file and ~/.pgpass.",
        show_default=False,
    ),
]
SnapshotOpt = Annotated[
    Path | None,
    typer.Option("--snapshot", "-s", help="Read a saved snapshot (pgdoctor snapshot) instead of a server."),
]
FormatOpt = Annotated[
    Format,
    typer.Option(
        "--format",
        "-f",
        help="auto = table on a terminal, plain in a pipe. Text formats show control characters "
        "escaped (\\x1b); markdown escapes its own syntax; json keeps the exact text; openmetrics = "
        "Prometheus gauges (README: Metrics).",
        case_sensitive=False,
    ),
]
# statement_timeout is an int of milliseconds (at most 2147483647): the longest --timeout it can take
MAX_TIMEOUT_S = 2_147_483
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        min=0.1,
        max=MAX_TIMEOUT_S,
        help="Seconds each of pgdoctor's reads may take (its statement_timeout; it gives up 1 s later "
        "whatever the server, network or a pooler's queue does) and the connect timeout (at least 2).",
    ),
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

# The connections analysis' thresholds, for `connections` and `record` (which runs that analysis every
# tick); their defaults are analyze.thresholds' constants, given where each command declares the option.
CapacityWarnOpt = Annotated[float, typer.Option(help="Warn when this % of usable slots is used.")]
CapacityCritOpt = Annotated[float, typer.Option(help="Critical at this % of usable slots.")]
IdleXactWarnOpt = Annotated[float, typer.Option(help="Seconds idle in transaction before a warning.")]
IdleXactCritOpt = Annotated[float, typer.Option(help="Seconds idle in transaction before critical.")]
LeakMinIdleOpt = Annotated[int, typer.Option(help="Idle connections of one app that may be a leak.")]
LeakSharePctOpt = Annotated[float, typer.Option(help="...or that take this % of usable slots.")]
LeakIdleAgeOpt = Annotated[float, typer.Option(help="Seconds idle after which a connection looks leaked.")]
BlockedCritOpt = Annotated[float, typer.Option(help="Seconds waiting on a lock before critical.")]
XminWarnOpt = Annotated[float, typer.Option(help="Seconds a transaction may hold back xmin.")]

# Options whose value may be left out, and the value they then take: `--watch` alone is `--watch 2s`
# (click as typer ships it has no optional values: Command.parse_args writes the value in).
OPTIONAL_VALUES = {"--watch": "2s"}

# --watch [INTERVAL] of connections, locks and pgbouncer (the loop: pgdoctor/commands/watching.py, imported
# only when a watch runs)
DEFAULT_WATCH = OPTIONAL_VALUES["--watch"]

WATCH_HELP = (
    f"Read and report again every INTERVAL (default {DEFAULT_WATCH} when given alone; 5s, 500ms, 1m or "
    "seconds) on the one connection until Ctrl-C, with what changed since the last tick and since the "
    "start: a live screen on a terminal, one summary line per tick in a pipe or with --format plain, "
    "one JSON document per line with --format json."
)
WatchOpt = Annotated[
    str | None, typer.Option("--watch", metavar="[INTERVAL]", help=WATCH_HELP, show_default=False)
]


def with_optional_values(args: list[str], opts: set[str]) -> list[str]:
    """`--watch` followed by nothing or by another option -> `--watch=2s` (see OPTIONAL_VALUES), for the
    options in `opts` (the command's own); everything after `--` stays as it is."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + args[i:]
        bare = i + 1 == len(args) or args[i + 1].startswith("-")
        out.append(f"{arg}={OPTIONAL_VALUES[arg]}" if arg in opts and bare else arg)
    return out


# Every number an option takes (thresholds in seconds, %, counts; --timeout; --cpus …) is finite, not
# negative, and at most this: larger is no threshold but a typo (1e12 s is 31,700 years).
MAX_OPTION_NUMBER = 1e12


class _Checked(click_types.ParamType):
    """An int or float option's type, checked first (see MAX_OPTION_NUMBER), then its own range."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.plain = click_types.FLOAT if isinstance(inner, click_types.FloatParamType) else click_types.INT

    def get_metavar(self, *args: Any, **kwargs: Any) -> str | None:
        return typing.cast(str | None, self.inner.get_metavar(*args, **kwargs))

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        option = param.opts[0] if param is not None and param.opts else "option"
        if ctx is not None and param is not None and ctx.get_parameter_source(param.name) is ENVIRONMENT:
            option = str(param.envvar)  # PGDOCTOR_TIMEOUT 'abc': not a number
        text = str(value)
        shown = repr(text[:40] + ("…" if len(text) > 40 else ""))
        try:
            number = self.plain.convert(value, param, ctx)
        except typer.BadParameter:
            kind = "a number" if self.plain is click_types.FLOAT else "a whole number"
            raise PgDoctorError(f"{option} {shown}: not {kind}", ExitCode.USAGE) from None
        if not math.isfinite(number):
            raise PgDoctorError(f"{option} {shown}: not a finite number", ExitCode.USAGE)
        if number < 0:
            raise PgDoctorError(f"{option} {shown}: must not be negative", ExitCode.USAGE)
        if number > MAX_OPTION_NUMBER:
            raise PgDoctorError(
                f"{option} {shown}: too large (at most {MAX_OPTION_NUMBER:g})", ExitCode.USAGE
            )
        try:
            return self.inner.convert(number, param, ctx)
        except typer.BadParameter as exc:  # the option's own range (--timeout at least 0.1 …)
            raise PgDoctorError(f"{option} {shown}: {exc.message}", ExitCode.USAGE) from None


def harden(command: Any) -> Any:
    """Give every int and float option of every command the one check of _Checked: NaN, ±inf,
    negatives and absurd magnitudes are one line and exit 2, before anything else runs."""
    for sub in [command, *getattr(command, "commands", {}).values()]:
        for param in sub.params:
            if isinstance(param.type, click_types.FloatParamType | click_types.IntParamType):
                param.type = _Checked(param.type)
    return command


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
    from pgdoctor.collect import collector
    from pgdoctor.db import connect

    with connect(dsn, timeout) as db:
        result: T = (live or collector(name))(db)
        return result


def obtain_pair(
    first: tuple[str, type[T]], second: tuple[str, type[U]], dsn: str | None, snapshot: Path | None, t: float
) -> tuple[T, U]:
    """Two datasets (name, class), as `obtain` gets one: from the snapshot, or live over one connection."""
    if snapshot is not None:
        return obtain(*first, dsn, snapshot, t), obtain(*second, dsn, snapshot, t)
    from pgdoctor.collect import collector
    from pgdoctor.db import connect

    with connect(dsn, t) as db:
        return collector(first[0])(db), collector(second[0])(db)


def emit_report(
    fmt: Format,
    to_json: Callable[[], Any],
    document: Callable[[], Document],
    metrics: Callable[[], str] | None = None,
) -> None:
    """Print a command's result: its JSON contract for --format json, its metrics (the OpenMetrics text)
    for --format openmetrics, else its document (each renderer imported only when used)."""
    if fmt is Format.JSON:
        from pgdoctor.render.json_out import emit_json

        emit_json(to_json())
    elif fmt is Format.OPENMETRICS:
        if metrics is None:
            raise PgDoctorError(
                "--format openmetrics: this command measures nothing to export", ExitCode.USAGE
            )
        text = metrics()
        _EMITTED.append(True)
        sys.stdout.write(text)
    else:
        from pgdoctor.render.document import emit

        emit(document(), fmt)


def metrics(command: str, report: Any) -> Callable[[], str]:
    """The OpenMetrics text of a command's report for emit_report, its modules imported only when
    --format openmetrics is chosen."""

    def text() -> str:
        from pgdoctor.render.openmetrics_reports import metrics_of

        return metrics_of(command, report)

    return text


# --format openmetrics: set once a command has written its metrics (a later error adds no pgdoctor_up 0)
_EMITTED: list[bool] = []


# Every command of the command line, built: the config file's keys are checked against all of them (only
# when a key is not the running command's own). pgdoctor.cli registers it.
EVERY_COMMAND: list[Callable[[], list[Any]]] = []


def _every_command() -> list[Any]:
    return [c for source in EVERY_COMMAND for c in source()]


_CONFIG = "pgdoctor.config"
_TARGET = "pgdoctor.target"


def _remember(ctx: Any, param: Any, value: Any) -> Any:
    """--config and --target (eager, so both are read before any other option): once both are known,
    the config file becomes the command's default_map, below the flags and the environment."""
    ctx.meta[_CONFIG if param.name == "config" else _TARGET] = value
    if _CONFIG in ctx.meta and _TARGET in ctx.meta and not ctx.resilient_parsing:
        from pgdoctor.config import defaults_for

        ctx.default_map = defaults_for(ctx, ctx.meta[_CONFIG], ctx.meta[_TARGET], _every_command)
    return value


def config_options() -> list[Any]:
    """--config FILE and --target NAME, which every command takes."""
    return [
        TyperOption(
            param_decls=["--config"],
            type=click_types.STRING,
            metavar="FILE",
            is_eager=True,
            expose_value=False,
            callback=_remember,
            help="Config file (TOML). Default: ./pgdoctor.toml, else ~/.config/pgdoctor/config.toml "
            "($XDG_CONFIG_HOME). See the README's Configuration.",
        ),
        TyperOption(
            param_decls=["--target"],
            type=click_types.STRING,
            metavar="NAME",
            is_eager=True,
            expose_value=False,
            callback=_remember,
            help="Use the config file's [targets.NAME] (its dsn or service, its options) over [defaults].",
        ),
    ]


class Command(TyperCommand):
    """Every pgdoctor command: each option also read from its environment variable (PGDOCTOR_ + its long
    name, shown in --help) and from the config file (--config, --target), in one place for all commands.
    Precedence: flag > environment > config file > default."""

    def __init__(self, name: str | None, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.params += config_options()
        for param in self.params:
            if param.param_type_name == "option":
                param.envvar = envvar_name(param)
                param.show_envvar = True  # type: ignore[attr-defined]

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        opts = {o for p in self.params for o in getattr(p, "opts", ()) if o in OPTIONAL_VALUES}
        result: list[str] = super().parse_args(ctx, with_optional_values(args, opts) if opts else args)
        return result

    def invoke(self, ctx: Any) -> Any:
        # the config file's servers yield to --snapshot (it says: read the file, not the target)
        if ctx.params.get("snapshot") is not None:
            for name in ("dsn", "postgres_dsn", "pgbouncer_dsn"):
                if name in ctx.params and ctx.get_parameter_source(name) is DEFAULT_MAP:
                    ctx.params[name] = None
        _EMITTED.clear()
        try:
            return super().invoke(ctx)
        except PgDoctorError as exc:
            # --format openmetrics and the command failed once its options were read (no server, no
            # privilege, a query failed): pgdoctor_up 0 on stdout, the error on stderr, the same exit code
            failed = exc.exit_code != ExitCode.USAGE and not _EMITTED
            if failed and str(ctx.params.get("fmt")) == Format.OPENMETRICS:
                from pgdoctor.render.openmetrics import down

                sys.stdout.write(down(ctx.info_name or ""))
            raise
