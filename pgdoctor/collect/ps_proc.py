"""`connections --ps`: the system side. Finds the postmaster in /proc (Linux) by the port or the data
directory, reads its backends' titles and the data directory's postmaster.pid and configuration files;
never connects to the server. The rows are pgdoctor.collect.ps; the parsers, ps_titles and ps_config.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pgdoctor.collect.ps import PsBackend, PsData, PsServer
from pgdoctor.collect.ps_config import (
    CAPACITY_DEFAULTS,
    ConfigRead,
    PostmasterPid,
    argv_settings,
    parse_opts,
    parse_postmaster_pid,
    read_config,
)
from pgdoctor.collect.ps_titles import (
    UNTITLED,
    Title,
    cluster_name_of,
    parse_cmdline,
    parse_ppid,
    parse_title,
)
from pgdoctor.errors import ExitCode, PgDoctorError

PROC = Path("/proc")
DEFAULT_PORT = 5432


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    argv: tuple[str, ...]

    @property
    def title(self) -> str:
        return " ".join(self.argv)


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
