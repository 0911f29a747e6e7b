"""The configuration file: option defaults per target, below the flags and the environment.

Precedence, for every option of every command: flag > environment (PGDOCTOR_<LONG_NAME>) > config file
([targets.NAME] chosen with --target, then [defaults]) > the built-in default. pgdoctor.options hands
the file's values to click as the command's `default_map`, which gives exactly that order.

The file: --config FILE (PGDOCTOR_CONFIG), else ./pgdoctor.toml, else
$XDG_CONFIG_HOME/pgdoctor/config.toml (~/.config/pgdoctor/config.toml). Keys are options' long names with
underscores (`idle_xact_warn = 30`, `format = "json"`, `timeout = 3`), plus `service` (becomes the
libpq conninfo `service=NAME`) and `password` (added to the target's dsn). A key that is an option of
another command only is allowed (a target serves every command) and ignored by the commands without it;
a key no command knows, a bad value or bad TOML is one line naming the file, the line and the key, exit 2.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from typer import BadParameter

from pgdoctor.errors import ExitCode, PgDoctorError

FILE_NAME = "pgdoctor.toml"  # in the working directory
USER_FILE = Path("pgdoctor") / "config.toml"  # under $XDG_CONFIG_HOME, else ~/.config
ENV_PREFIX = "PGDOCTOR_"
DEFAULTS = "defaults"
TARGETS = "targets"
# target keys that are not options: they make the --dsn
CONNECTION_KEYS = ("service", "password")
DSN_KEYS = ("dsn", "pgbouncer_dsn")  # keys that may hold a password


def long_name(param: Any) -> str:
    """An option's long name without dashes: `idle-xact-warn` for --idle-xact-warn."""
    opts: list[str] = param.opts
    return next((o for o in opts if o.startswith("--")), opts[0]).lstrip("-")


def envvar_name(param: Any) -> str:
    """The environment variable of an option: PGDOCTOR_ + its long name, upper case, - as _.

    >>> class P:
    ...     opts = ["--idle-xact-warn"]
    >>> envvar_name(P())
    'PGDOCTOR_IDLE_XACT_WARN'
    """
    return ENV_PREFIX + long_name(param).upper().replace("-", "_")


def config_key(param: Any) -> str:
    """An option's key in the config file: its long name with underscores (`idle_xact_warn`)."""
    return long_name(param).replace("-", "_")


def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / USER_FILE


def find(explicit: str | None) -> Path | None:
    """The config file to read: the one named (it must exist), else the first that exists of
    ./pgdoctor.toml and the user's config.toml, else None."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise PgDoctorError(f"config file {explicit}: not found (or not a file)", ExitCode.USAGE)
        return path
    for path in (Path(FILE_NAME), user_config_path()):
        if path.is_file():
            return path
    return None


class ConfigFile:
    """A parsed config file, with its text to point at lines."""

    def __init__(self, path: Path) -> None:
        import tomllib

        self.path = path
        try:
            self.text = path.read_bytes().decode("utf-8")
        except OSError as exc:
            raise PgDoctorError(f"config file {path}: {exc.strerror}", ExitCode.USAGE) from None
        except UnicodeDecodeError:
            raise PgDoctorError(f"config file {path}: not UTF-8 text", ExitCode.USAGE) from None
        try:
            self.data = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"\(at line (\d+), column \d+\)$", str(exc))
            line = f":{m.group(1)}" if m else ""
            why = re.sub(r"\s*\(at line \d+, column \d+\)$|\s*\(at end of document\)$", "", str(exc))
            raise PgDoctorError(f"{path}{line}: not valid TOML: {why}", ExitCode.USAGE) from None

    def fail(self, table: tuple[str, ...], key: str | None, message: str) -> PgDoctorError:
        """One line: file:line: [table] key: message (no password of the file in it)."""
        from pgdoctor.dsn import redact

        where = f"[{'.'.join(table)}] " if table else ""
        text = f"{self.path}:{line_of(self.text, table, key)}: {where}{key + ': ' if key else ''}{message}"
        for secret in sorted(self.passwords(), key=len, reverse=True):
            text = text.replace(secret, "****")
        return PgDoctorError(redact(text), ExitCode.USAGE)

    def tables(self) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
        """([defaults] and every [targets.NAME]): (its path, its keys); anything else is an error."""
        found: list[tuple[tuple[str, ...], dict[str, Any]]] = []
        for name, value in self.data.items():
            if name == DEFAULTS and isinstance(value, dict):
                found.append(((DEFAULTS,), value))
            elif name == TARGETS and isinstance(value, dict):
                for target, keys in value.items():
                    if not isinstance(keys, dict):
                        raise self.fail((TARGETS,), target, "a target is a table: [targets.NAME]")
                    found.append(((TARGETS, target), keys))
            else:
                raise self.fail(
                    (), name, "not a section of pgdoctor's config: use [defaults], [targets.NAME]"
                )
        return found

    def tables_raw(self) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
        raw: list[tuple[tuple[str, ...], dict[str, Any]]] = []
        if isinstance(self.data.get(DEFAULTS), dict):
            raw.append(((DEFAULTS,), self.data[DEFAULTS]))
        for target, keys in (self.data.get(TARGETS) or {}).items():
            if isinstance(keys, dict):
                raw.append(((TARGETS, target), keys))
        return raw

    def passwords(self) -> list[str]:
        """Every password written in the file: `password` keys and those in dsns."""
        from pgdoctor.dsn import passwords_of

        found: list[str] = []
        for _, keys in self.tables_raw():
            if isinstance(keys.get("password"), str) and keys["password"]:
                found.append(keys["password"])
            for key in DSN_KEYS:
                if isinstance(keys.get(key), str):
                    found += passwords_of(keys[key])
        return found


_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")
_PART = re.compile(r"""\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*(?:\.|$)""")


def _path(header: str) -> tuple[str, ...]:
    parts = []
    for m in _PART.finditer(header):
        part = m.group(1)
        parts.append(part[1:-1] if part[:1] in "\"'" else part)
    return tuple(parts)


def line_of(text: str, table: tuple[str, ...], key: str | None) -> int:
    """The line of `key` in `table` (tomllib gives no line numbers for keys): found by scanning the
    text for the table's header and the key's `key =` under it; else the header's line; else 1.

    >>> text = '[defaults]\\nformat = "json"\\n\\n[targets."prod-eu"]\\n dsn = "x"\\nformat = 3\\n'
    >>> line_of(text, ("targets", "prod-eu"), "format"), line_of(text, ("defaults",), "format")
    (6, 2)
    >>> line_of(text, ("targets", "prod-eu"), "timeout"), line_of(text, (), "targets")
    (4, 4)
    >>> line_of(text + "[targets.x.extra]\\n", ("targets", "x"), "extra")
    7
    """
    lines = text.splitlines()
    name = re.escape(key or "")
    assignment = re.compile(rf"""^\s*(?:{name}|"{name}"|'{name}')\s*=""")
    current: tuple[str, ...] = ()
    header = as_table = 0
    for number, line in enumerate(lines, 1):
        m = _HEADER.match(line)
        if m and not line.lstrip().startswith("[["):
            current = _path(m.group(1))
            if current == table and not header:
                header = number
            elif key is not None and current[: len(table) + 1] == (*table, key) and not as_table:
                as_table = number  # the key written as a table: [name], [targets.prod.name]
        elif key is not None and current == table and assignment.match(line):
            return number
    return as_table or header or 1


def _conninfo_value(value: str) -> str:
    """A value quoted for a libpq conninfo (key='va lue')."""
    if value and re.fullmatch(r"[^\s'\\]+", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _connection(config: ConfigFile, table: tuple[str, ...], keys: dict[str, Any]) -> dict[str, Any]:
    """The table's keys, `service` turned into a dsn; `password` kept for after merging."""
    out = dict(keys)
    for key in CONNECTION_KEYS:
        if key in out and not isinstance(out[key], str):
            raise config.fail(table, key, "must be a string")
    if "service" in out:
        if "dsn" in out:
            raise config.fail(table, "service", "give either dsn or service, not both")
        out["dsn"] = "service=" + _conninfo_value(out.pop("service"))
    return out


# A key names the same server for every command: `dsn` is PostgreSQL, `pgbouncer_dsn` PgBouncer's admin
# console. `pgdoctor pgbouncer` takes the console as its --dsn and PostgreSQL as --postgres-dsn: its keys
# are renamed (command: {option's own key: key in the file}).
RENAMED: dict[str, dict[str, str]] = {"pgbouncer": {"dsn": "pgbouncer_dsn", "postgres_dsn": "dsn"}}


def option_keys(command: Any) -> dict[str, Any]:
    """A command's options by config key (--config and --target are no keys: they choose the file)."""
    renamed = RENAMED.get(command.name, {})
    return {
        renamed.get(config_key(p), config_key(p)): p
        for p in command.params
        if p.param_type_name == "option" and p.expose_value
    }


def _warn_if_readable(config: ConfigFile) -> None:
    """As libpq does for ~/.pgpass: a file holding a password should be readable by its owner only."""
    if not config.passwords():
        return
    mode = config.path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(
            f"warning: config file {config.path} holds a password and has group or world access "
            f"(mode {stat.S_IMODE(mode):04o}); permissions should be u=rw (0600) or less",
            file=sys.stderr,
        )


Tables = list[tuple[tuple[str, ...], dict[str, Any]]]


def _check_keys(
    config: ConfigFile, tables: Tables, own: dict[str, Any], every_command: Callable[[], Iterable[Any]]
) -> None:
    """Every key of every table is an option of some command (or service, password)."""
    known: set[str] | None = None
    for table, keys in tables:
        for key, value in keys.items():
            if isinstance(value, dict):
                raise config.fail(table, key, "a table where a value is expected")
            if key in own or key in CONNECTION_KEYS:
                continue
            if known is None:  # every command built only when the file has keys for other commands
                known = {key for command in every_command() for key in option_keys(command)}
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known | set(CONNECTION_KEYS)), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                for renamed in RENAMED.values():
                    if key in renamed:  # postgres_dsn
                        hint = (
                            f" (did you mean {renamed[key]}? a key names the same server for every command)"
                        )
                raise config.fail(table, key, f"no pgdoctor command has this option{hint}")


def _merged(
    config: ConfigFile, tables: Tables, target: str | None
) -> tuple[dict[str, Any], dict[str, tuple[str, ...]]]:
    """[defaults], then [targets.TARGET] over it: the values, and the table each came from."""
    chosen = [t for t in tables if t[0] == (DEFAULTS,)]
    if target:
        match = [t for t in tables if t[0] == (TARGETS, target)]
        if not match:
            names = ", ".join(t[0][1] for t in tables if t[0][0] == TARGETS) or "none"
            raise PgDoctorError(
                f"--target {target}: no [targets.{target}] in {config.path} (targets: {names})"
            )
        chosen += match
    merged: dict[str, Any] = {}
    origin: dict[str, tuple[str, ...]] = {}
    for table, keys in chosen:
        for key, value in _connection(config, table, keys).items():
            merged[key] = value
            origin[key] = table
    if "password" in merged:
        password = merged.pop("password")
        from psycopg import ProgrammingError
        from psycopg.conninfo import make_conninfo

        table = origin.get("dsn", origin["password"])
        try:
            merged["dsn"] = make_conninfo(merged.get("dsn", ""), password=password)
        except ProgrammingError:
            raise config.fail(table, "dsn", "not a valid connection string") from None
        origin["dsn"] = table
    return merged, origin


def _checked(ctx: Any, config: ConfigFile, table: tuple[str, ...], key: str, param: Any, value: Any) -> Any:
    """The value as the option takes it (a list for a repeatable option), checked by the option's type."""
    if param.multiple and isinstance(value, str):
        value = [value]
    if isinstance(value, list) and not param.multiple:
        raise config.fail(table, key, "a list where one value is expected")
    try:
        param.type_cast_value(ctx, value)
    except PgDoctorError as exc:  # pgdoctor.options' number check: "--timeout 'abc': not a number"
        why = exc.message.split(": ", 1)[1] if exc.message.startswith("--") else exc.message
        raise config.fail(table, key, f"{why} ({value!r})") from None
    except BadParameter as exc:  # not one of the choices …
        raise config.fail(table, key, exc.message) from None
    return value


def defaults_for(
    ctx: Any,
    explicit: str | None,
    target: str | None,
    every_command: Callable[[], Iterable[Any]],
) -> dict[str, Any] | None:
    """The running command's default_map from the config file ([defaults] under [targets.TARGET]),
    keyed by parameter name; None without a file. Values are checked here, with the file and line."""
    path = find(explicit)
    if path is None:
        if target:
            raise PgDoctorError(
                f"--target {target}: no config file (--config FILE, ./{FILE_NAME} or {user_config_path()})",
                ExitCode.USAGE,
            )
        return None
    config = ConfigFile(path)
    tables = config.tables()
    _warn_if_readable(config)
    own = option_keys(ctx.command)
    _check_keys(config, tables, own, every_command)
    merged, origin = _merged(config, tables, target)
    return {
        own[key].name: _checked(ctx, config, origin[key], key, own[key], value)
        for key, value in merged.items()
        if key in own  # else an option of other commands only
    }
