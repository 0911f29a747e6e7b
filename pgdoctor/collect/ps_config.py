"""`connections --ps`: the server's files read without connecting: DATADIR/postmaster.pid, the
configuration files (includes followed) and the postmaster's command line, for the settings that bound
the client slots. Pure parsers with doctests (run by tests/test_ps_titles.py); the reading is given a
function, so the rules are tested on strings.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

# Settings that bound the client slots; the defaults PostgreSQL uses when no file or option sets them
# ("Connections and Authentication" in the PostgreSQL docs; reserved_connections is 16+).
CAPACITY_DEFAULTS = {
    "max_connections": "100",
    "superuser_reserved_connections": "3",
    "reserved_connections": "0",
}


@dataclass(frozen=True)
class PostmasterPid:
    """The first lines of DATADIR/postmaster.pid ("Database File Layout" in the PostgreSQL docs)."""

    pid: int
    data_dir: str
    port: int
    socket_dir: str | None


def parse_postmaster_pid(text: str) -> PostmasterPid | None:
    """Line 1 the postmaster's pid, 2 the data directory, 4 the port, 5 the first socket directory.

    >>> parse_postmaster_pid("5903\\n/var/lib/pg/data\\n1795579256\\n5433\\n/tmp\\n*\\n 2146850 9\\nready\\n")
    PostmasterPid(pid=5903, data_dir='/var/lib/pg/data', port=5433, socket_dir='/tmp')
    >>> parse_postmaster_pid("garbage") is None
    True
    """
    lines = text.split("\n")
    try:
        return PostmasterPid(
            pid=int(lines[0]),
            data_dir=lines[1],
            port=int(lines[3]),
            socket_dir=(lines[4].strip() or None) if len(lines) > 4 else None,
        )
    except (IndexError, ValueError):
        return None


def argv_settings(argv: Iterable[str]) -> dict[str, str]:
    """The settings given on the postmaster's command line (`-c name=value`, `--name=value`, `-N`, `-p`,
    `-D`, which names the configuration directory: key `-D`).

    >>> argv_settings(["postgres", "-D", "/data", "-c", "max_connections=8", "--port=5433", "-N", "9"])
    {'-D': '/data', 'max_connections': '9', 'port': '5433'}
    >>> argv_settings(["postgres", "-cconfig_file=/etc/pg.conf", "--superuser-reserved-connections=0"])
    {'config_file': '/etc/pg.conf', 'superuser_reserved_connections': '0'}
    """
    args = list(argv)[1:]
    out: dict[str, str] = {}
    short = {"-N": "max_connections", "-p": "port", "-D": "-D", "-B": "shared_buffers"}
    i = 0
    while i < len(args):
        arg = args[i]
        value: str | None = None
        name: str | None = None
        if arg in short or arg == "-c":
            value = args[i + 1] if i + 1 < len(args) else None
            i += 1
            if arg == "-c" and value and "=" in value:
                name, value = value.split("=", 1)
            elif arg != "-c":
                name = short[arg]
        elif arg[:2] in short and len(arg) > 2:
            name, value = short[arg[:2]], arg[2:]
        elif arg.startswith(("-c", "--")) and "=" in arg:
            name, value = arg[2:].split("=", 1)
        if name is not None and value is not None:
            out[name if name == "-D" else name.replace("-", "_").lower()] = value
        i += 1
    return dict(sorted(out.items()))


def parse_opts(text: str) -> tuple[str, ...]:
    """DATADIR/postmaster.opts (the command line the server was started with) -> argv.

    >>> parse_opts('/usr/lib/postgresql/15/bin/postgres "-D" "/data" "-c" "max_connections=8"\\n')
    ('/usr/lib/postgresql/15/bin/postgres', '-D', '/data', '-c', 'max_connections=8')
    """
    try:
        return tuple(shlex.split(text))
    except ValueError:
        return tuple(text.split())


_CONF_LINE = re.compile(
    r"^\s*(?P<name>[A-Za-z_][\w.\-]*)\s*=?\s*"
    r"(?P<value>'(?:[^'\\]|\\.|'')*'|[^\s#']+)?\s*(?:#.*)?$"
)


def parse_conf(text: str) -> list[tuple[str, str]]:
    """postgresql.conf syntax -> (name, value) in file order; names lowercased, quotes removed.
    `include`, `include_if_exists` and `include_dir` come out as entries too.

    >>> parse_conf("max_connections = 8   # (change requires restart)\\n#port = 5432\\n"
    ...            "cluster_name='it''s'\\ninclude_dir 'conf.d'\\nbad line here\\n")
    [('max_connections', '8'), ('cluster_name', "it's"), ('include_dir', 'conf.d')]
    """
    out = []
    for line in text.splitlines():
        m = _CONF_LINE.match(line)
        if not m or m.group("value") is None:
            continue
        value = m.group("value")
        if value.startswith("'"):
            value = re.sub(r"''|\\(.)", lambda e: e.group(1) if e.group(1) is not None else "'", value[1:-1])
        out.append((m.group("name").lower(), value))
    return out


@dataclass
class ConfigRead:
    """Settings read from configuration files, and what could not be read."""

    settings: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    error: str | None = None


def read_config(path: Path, read: Callable[[Path], str], into: ConfigRead, depth: int = 0) -> None:
    """Read one configuration file and what it includes, later settings overriding earlier ones."""
    if depth > 10:
        return
    try:
        text = read(path)
    except OSError as exc:
        if into.error is None:
            into.error = f"cannot read {path}: {exc.strerror or exc}"
        return
    into.files.append(str(path))
    for name, value in parse_conf(text):
        if name in ("include", "include_if_exists", "include_dir"):
            target = path.parent / value
            if name == "include_dir":
                try:
                    names = sorted(
                        p for p in os.listdir(target) if p.endswith(".conf") and not p.startswith(".")
                    )
                except OSError:
                    continue
                for sub in names:
                    read_config(target / sub, read, into, depth + 1)
            elif name == "include" or target.exists():
                read_config(target, read, into, depth + 1)
        else:
            into.settings[name] = value
