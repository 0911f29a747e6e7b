"""Who holds the connections when no SQL client gets in: the backends' process titles (`--ps`).

When every slot is taken, the reserved ones too (`sorry, too many clients already`), no session can
ask pg_stat_activity. On the database host (or in its container) the process list still says, for
every backend, its user, database, client address and state: PostgreSQL rewrites each backend's
process title (`update_process_title`, on by default on Linux) to

    postgres: [CLUSTER_NAME: ]USER DATABASE CLIENT(PORT) STATE[ waiting]

This module is the only code of `--ps` that touches the system: it reads /proc (Linux) and the data
directory's postmaster.pid and configuration files, never connects to the server. Parsing is done by
the pure functions below (doctests), so the rules are tested on real title strings.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pgdoctor.errors import ExitCode, PgDoctorError

PROC = Path("/proc")
DEFAULT_PORT = 5432

# Settings that bound the client slots; the defaults PostgreSQL uses when no file or option sets them
# ("Connections and Authentication" in the PostgreSQL docs; reserved_connections is 16+).
CAPACITY_DEFAULTS = {
    "max_connections": "100",
    "superuser_reserved_connections": "3",
    "reserved_connections": "0",
}

CLIENT_BACKEND = "client backend"
UNTITLED = "untitled process"

# The kinds of non-client processes a postmaster starts, by the start of their title (longest first
# where one is the prefix of another). Named like pg_stat_activity.backend_type.
BACKGROUND_KINDS = (
    "autovacuum launcher",
    "autovacuum worker",
    "background writer",
    "checkpointer",
    "walwriter",
    "walreceiver",
    "walsender",
    "walsummarizer",
    "wal summarizer",
    "logical replication launcher",
    "logical replication parallel apply worker",
    "logical replication apply worker",
    "logical replication tablesync worker",
    "logical replication worker",
    "parallel worker",
    "slotsync worker",
    "io worker",
    "archiver",
    "startup",
    "stats collector",
    "logger",
)
# Always running, whatever the configuration: their title shows the cluster_name prefix, if any.
_ALWAYS = ("checkpointer", "background writer", "walwriter", "autovacuum launcher", "io worker")
_CLIENT = re.compile(
    r"^(?P<user>\S+) (?P<database>.+?) "
    r"(?P<client>\[local\]|(?P<host>\S+)\((?P<port>\d+)\))"
    r"(?: (?P<activity>.*))?$"
)


@dataclass(frozen=True)
class Title:
    """One process title, parsed.

    kind is `client backend`, a background kind (`checkpointer`, `walsender`, ...) or, for a custom
    background worker, its own title. host is None for a Unix-socket client (`[local]`); activity is
    None when the title carries no state (update_process_title = off).
    """

    kind: str
    user: str | None = None
    database: str | None = None
    host: str | None = None
    port: int | None = None
    activity: str | None = None
    waiting: bool = False


def parse_cmdline(raw: bytes) -> tuple[str, ...]:
    r"""/proc/PID/cmdline -> argv. A backend's title is one string, padded with NULs.

    >>> parse_cmdline(b'/usr/lib/postgresql/15/bin/postgres\x00-D\x00/var/lib/pg/data\x00')
    ('/usr/lib/postgresql/15/bin/postgres', '-D', '/var/lib/pg/data')
    >>> parse_cmdline(b'postgres: app shop [local] idle\x00\x00\x00\x00')
    ('postgres: app shop [local] idle',)
    >>> parse_cmdline(b'')
    ()
    """
    text = raw.rstrip(b"\0").decode("utf-8", errors="replace")
    return tuple(text.split("\0")) if text else ()


def parse_ppid(stat: str) -> int:
    """The parent pid from /proc/PID/stat (the command name in parentheses may hold spaces).

    >>> parse_ppid("4711 (postgres) S 4700 4700 4700 0 -1 4194560 1061 0 0 0")
    4700
    >>> parse_ppid("12 (a b) c) R 1 12 12 0")
    1
    """
    return int(stat.rsplit(")", 1)[1].split()[1])


def cluster_name_of(titles: Iterable[str]) -> str | None:
    """The cluster_name prefix the server puts in every title, read off its always-running processes.

    >>> cluster_name_of(["postgres: main: checkpointer ", "postgres: main: app shop [local] idle"])
    'main'
    >>> cluster_name_of(["postgres: checkpointer ", "postgres: app shop [local] idle"]) is None
    True
    >>> cluster_name_of(["postgres: 15/main: io worker 0"])
    '15/main'
    """
    always = "|".join(re.escape(k) for k in _ALWAYS)
    for title in titles:
        m = re.match(rf"^postgres: (?:(?P<cluster>.+?): )?(?:{always})\b", title)
        if m:
            return m.group("cluster")
    return None


def parse_title(title: str, cluster_name: str | None = None) -> Title | None:
    """Parse a child process's title; None when it is no PostgreSQL title (a backend not yet started).

    >>> parse_title("postgres: app shop 10.0.0.7(51234) idle in transaction")
    Title(kind='client backend', user='app', database='shop', host='10.0.0.7', port=51234, \
activity='idle in transaction', waiting=False)
    >>> parse_title("postgres: main: app shop [local] idle in transaction (aborted)", "main").activity
    'idle in transaction (aborted)'
    >>> t = parse_title("postgres: app shop ::1(57192) UPDATE waiting")
    >>> (t.host, t.port, t.activity, t.waiting)
    ('::1', 57192, 'UPDATE', True)
    >>> parse_title("postgres: app shop fe80::1%eth0(5432) SELECT").host
    'fe80::1%eth0'
    >>> parse_title("postgres: app shop [local] ")  # update_process_title = off: no state
    Title(kind='client backend', user='app', database='shop', host=None, port=None, activity=None, \
waiting=False)
    >>> parse_title("postgres: main: checkpointer ", "main").kind
    'checkpointer'
    >>> parse_title("postgres: io worker 2").kind
    'io worker'
    >>> parse_title("postgres: walsender repl 10.0.0.9(40012) streaming 0/3000148").kind
    'walsender'
    >>> parse_title("postgres: parallel worker for PID 4711").kind
    'parallel worker'
    >>> parse_title("postgres: pg_cron launcher").kind
    'pg_cron launcher'
    >>> parse_title("postgres: logger logs [local] idle").kind  # a user named like a process
    'client backend'
    >>> parse_title("/usr/lib/postgresql/15/bin/postgres -D /var/lib/pg/data") is None
    True
    """
    prefix = "postgres: " + (f"{cluster_name}: " if cluster_name else "")
    if not title.startswith(prefix):
        return None
    rest = title[len(prefix) :].strip()
    m = None if rest.startswith("walsender ") else _CLIENT.match(rest)
    if not m:  # walsenders carry a client too, but use their own slots (max_wal_senders)
        for kind in BACKGROUND_KINDS:
            if rest == kind or rest.startswith(kind + " "):
                return Title(kind=kind)
        return Title(kind=rest or UNTITLED)
    activity = (m.group("activity") or "").strip() or None
    waiting = activity is not None and (activity == "waiting" or activity.endswith(" waiting"))
    if waiting and activity is not None:
        activity = activity[: -len("waiting")].strip() or None
    port = m.group("port")
    return Title(
        kind=CLIENT_BACKEND,
        user=m.group("user"),
        database=m.group("database"),
        host=m.group("host"),
        port=int(port) if port else None,
        activity=activity,
        waiting=waiting,
    )


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


# --- the system side: /proc and the data directory ------------------------------------------------


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    argv: tuple[str, ...]

    @property
    def title(self) -> str:
        return " ".join(self.argv)


@dataclass(frozen=True)
class PsBackend:
    """A child process of the postmaster: its pid, its raw title and the title parsed."""

    pid: int
    title: str
    parsed: Title


@dataclass(frozen=True)
class PsServer:
    """The server found in the process list, and the settings read from its files (None: unreadable)."""

    pid: int
    port: int
    data_dir: str | None
    version: str | None  # the major version from DATADIR/PG_VERSION (or the binary's path)
    cluster_name: str | None
    settings: dict[str, str] | None
    settings_files: list[str]
    settings_error: str | None
    os_user: str


@dataclass(frozen=True)
class PsData:
    server: PsServer
    backends: list[PsBackend]


def read_procs(root: Path = PROC) -> list[Proc]:
    """Every process whose stat and cmdline can be read (processes that end meanwhile are skipped)."""
    procs = []
    try:
        entries = os.listdir(root)
    except OSError as exc:
        raise PgDoctorError(
            f"--ps reads the process list in {root}, which is not readable here ({exc.strerror}); "
            "it works on Linux, on the database host or inside its container",
            ExitCode.UNAVAILABLE,
        ) from exc
    for name in entries:
        if not name.isdigit():
            continue
        try:
            stat = (root / name / "stat").read_text()
            raw = (root / name / "cmdline").read_bytes()
        except OSError:
            continue
        argv = parse_cmdline(raw)
        if argv:
            procs.append(Proc(int(name), parse_ppid(stat), argv))
    return procs


def is_postmaster(proc: Proc, by_pid: Mapping[int, Proc]) -> bool:
    """A `postgres` (or `postmaster`) executable that is not a titled backend nor a backend just forked
    (which still shows its parent's command line)."""
    if not proc.argv or proc.argv[0].startswith("postgres:"):
        return False
    if os.path.basename(proc.argv[0]) not in ("postgres", "postmaster"):
        return False
    if any(a in ("--single", "--boot", "--check", "-C", "--describe-config") for a in proc.argv[1:]):
        return False
    parent = by_pid.get(proc.ppid)
    return not (parent is not None and parent.argv == proc.argv)


def _read_text(path: Path) -> str:
    return path.read_text()


def _data_dir_candidates(proc: Proc, root: Path) -> list[Path]:
    settings = argv_settings(proc.argv)
    out = []
    with contextlib.suppress(OSError):  # the postmaster chdir()s to its data directory
        out.append(Path(os.readlink(root / str(proc.pid) / "cwd")))
    for key in ("data_directory", "-D"):
        if key in settings and os.path.isabs(settings[key]):
            out.append(Path(settings[key]))
    return out


@dataclass(frozen=True)
class _Candidate:
    proc: Proc
    pidfile: PostmasterPid | None  # None: its data directory could not be read
    port: int | None
    unreadable: str | None


def _inspect(proc: Proc, root: Path) -> _Candidate:
    unreadable = None
    for data_dir in _data_dir_candidates(proc, root):
        try:
            parsed = parse_postmaster_pid((data_dir / "postmaster.pid").read_text())
        except PermissionError as exc:
            unreadable = f"{data_dir / 'postmaster.pid'}: {exc.strerror}"
            continue
        except OSError:
            continue
        if parsed and parsed.pid == proc.pid:
            return _Candidate(proc, parsed, parsed.port, None)
    port = argv_settings(proc.argv).get("port")
    if unreadable is None:
        unreadable = f"the data directory of pid {proc.pid}"
    return _Candidate(proc, None, int(port) if port and port.isdigit() else None, unreadable)


def _need_privilege(what: str) -> PgDoctorError:
    return PgDoctorError(
        f"--ps cannot read {what}: run it as root or as the server's operating-system user (postgres)",
        ExitCode.PRIVILEGE,
    )


def locate(
    procs: list[Proc], port: int | None, data_dir: Path | None, root: Path = PROC
) -> tuple[Proc, PostmasterPid | None]:
    """The postmaster of `data_dir` when given, else the one whose port is `port`."""
    by_pid = {p.pid: p for p in procs}
    if data_dir is not None:
        pidfile_path = data_dir / "postmaster.pid"
        try:
            parsed = parse_postmaster_pid(pidfile_path.read_text())
        except PermissionError as exc:
            raise _need_privilege(f"{pidfile_path} ({exc.strerror})") from exc
        except OSError as exc:
            raise PgDoctorError(
                f"no server is running on data directory {data_dir}: {pidfile_path}: {exc.strerror}",
                ExitCode.CANNOT_CONNECT,
            ) from exc
        if parsed is None:
            raise PgDoctorError(f"{pidfile_path} is not a postmaster.pid file", ExitCode.CANNOT_CONNECT)
        proc = by_pid.get(parsed.pid)
        if proc is None or not is_postmaster(proc, by_pid):
            raise PgDoctorError(
                f"no server is running on data directory {data_dir}: {pidfile_path} names pid "
                f"{parsed.pid}, which is not a running postmaster here (a stale file, or another "
                "host's or container's process)",
                ExitCode.CANNOT_CONNECT,
            )
        return proc, parsed
    wanted = port or DEFAULT_PORT
    candidates = [_inspect(p, root) for p in procs if is_postmaster(p, by_pid)]
    matches = [c for c in candidates if c.port == wanted]
    if len(matches) == 1:
        return matches[0].proc, matches[0].pidfile
    if len(matches) > 1:
        pids = ", ".join(str(c.proc.pid) for c in matches)
        raise PgDoctorError(
            f"several postmasters (pids {pids}) claim port {wanted}: pick one with --data-dir",
            ExitCode.USAGE,
        )
    unknown = [c for c in candidates if c.port is None]
    if unknown:
        raise _need_privilege(unknown[0].unreadable or "a data directory")
    if not candidates:
        raise PgDoctorError(
            "no PostgreSQL server (postmaster) in this host's process list: run --ps on the database "
            "host or inside its container",
            ExitCode.CANNOT_CONNECT,
        )
    ports = ", ".join(sorted({str(c.port) for c in candidates}))
    raise PgDoctorError(
        f"no PostgreSQL server listens on port {wanted} here (this host's postmasters use port(s) "
        f"{ports}); give the server's port in --dsn or PGPORT, or its --data-dir",
        ExitCode.CANNOT_CONNECT,
    )


def read_settings(
    postmaster: Proc, data_dir: Path | None, read: Callable[[Path], str] = _read_text
) -> ConfigRead:
    """The settings in force as the files and the command line say (postgresql.conf and its includes,
    then postgresql.auto.conf, then the command line: PostgreSQL's own order of precedence)."""
    argv = postmaster.argv
    result = ConfigRead()
    if data_dir is not None:
        with contextlib.suppress(OSError):
            argv = parse_opts(read(data_dir / "postmaster.opts")) or argv
    given = argv_settings(argv)
    conf_dir = Path(given["-D"]) if "-D" in given and os.path.isabs(given["-D"]) else data_dir
    config_file = Path(given["config_file"]) if "config_file" in given else None
    if config_file is None and conf_dir is not None:
        config_file = conf_dir / "postgresql.conf"
    if config_file is None:
        result.error = "cannot tell where postgresql.conf is"
        return result
    read_config(config_file, read, result)
    if data_dir is not None and result.error is None:
        auto = data_dir / "postgresql.auto.conf"  # ALTER SYSTEM's file; it may not exist
        if auto.exists():
            read_config(auto, read, result)
    result.settings.update({k: v for k, v in given.items() if k != "-D"})
    return result


def _version(data_dir: Path | None, argv: tuple[str, ...]) -> str | None:
    if data_dir is not None:
        try:
            return (data_dir / "PG_VERSION").read_text().strip()
        except OSError:
            pass
    m = re.search(r"/postgresql/(\d+(?:\.\d+)?)/", argv[0] if argv else "")
    return m.group(1) if m else None


def _os_user() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def collect_ps(port: int | None, data_dir: Path | None, root: Path = PROC) -> PsData:
    """Find the postmaster (by `data_dir`, else by `port`) and read its children's titles."""
    procs = read_procs(root)
    proc, pidfile = locate(procs, port, data_dir, root)
    found_dir = Path(pidfile.data_dir) if pidfile is not None else data_dir
    children = [(p.pid, p.title) for p in procs if p.ppid == proc.pid]
    cluster = cluster_name_of(title for _, title in children)
    backends = [
        PsBackend(pid, title, parse_title(title, cluster) or Title(kind=UNTITLED))
        for pid, title in sorted(children)
    ]
    config = read_settings(proc, found_dir)
    settings: dict[str, str] | None = None
    if config.error is None:
        settings = {**CAPACITY_DEFAULTS, **config.settings}
    listen_port = pidfile.port if pidfile else (port or DEFAULT_PORT)
    return PsData(
        server=PsServer(
            pid=proc.pid,
            port=listen_port,
            data_dir=str(found_dir) if found_dir else None,
            version=_version(found_dir, proc.argv),
            cluster_name=cluster,
            settings=settings,
            settings_files=config.files,
            settings_error=config.error,
            os_user=_os_user(),
        ),
        backends=backends,
    )


def port_of(dsn: str | None) -> int | None:
    """The port a DSN (or DATABASE_URL, or PGPORT) names, without connecting; None: the default."""
    from pgdoctor.dsn import resolve_dsn

    conninfo = resolve_dsn(dsn)
    port = ""
    if conninfo:
        from psycopg.conninfo import conninfo_to_dict

        try:
            port = str(conninfo_to_dict(conninfo).get("port") or "")
        except Exception as exc:
            from pgdoctor.dsn import redact

            raise PgDoctorError(
                redact(f"invalid connection string: {exc}", conninfo), ExitCode.USAGE
            ) from exc
    port = port or os.environ.get("PGPORT", "")
    first = port.split(",")[0].strip()
    if not first:
        return None
    if not first.isdigit():
        raise PgDoctorError(f"invalid port {first!r} in the connection string or PGPORT", ExitCode.USAGE)
    return int(first)
