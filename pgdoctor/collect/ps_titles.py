"""`connections --ps`: the backends' process titles, parsed. Pure functions with doctests (run by
tests/test_ps_titles.py), so the rules are tested on real title strings. PostgreSQL rewrites each
backend's title (`update_process_title`, on by default on Linux) to

    postgres: [CLUSTER_NAME: ]USER DATABASE CLIENT(PORT) STATE[ waiting]

The system side (finding the postmaster, reading /proc) is pgdoctor.collect.ps; the data directory's
files, pgdoctor.collect.ps_config.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

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
