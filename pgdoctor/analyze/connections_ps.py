"""`connections --ps`: the process titles as pg_stat_activity-like rows, through the same classification,
grouping and capacity rules as over SQL; findings limited to what a title can tell (no ages, no
application_name, no query text, no lock holders)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from pgdoctor.analyze import thresholds
from pgdoctor.analyze.common import CLIENT_BACKEND
from pgdoctor.analyze.connections import (
    ConnectionsReport,
    Session,
    capacity_of,
    find_capacity,
    group_key,
    group_sessions,
    to_session,
)
from pgdoctor.analyze.findings import Finding, Severity, sort_findings
from pgdoctor.collect.activity import ActivityRow
from pgdoctor.collect.ps import PsBackend, PsData, PsServer
from pgdoctor.collect.ps_config import CAPACITY_DEFAULTS
from pgdoctor.collect.server import ServerInfo, SettingRow

GROUP_BY = ("user", "database", "client")  # a title has no application_name


def state_of(activity: str | None) -> tuple[str | None, str | None]:
    """(pg_stat_activity-like state, command tag) from a title's activity.

    >>> state_of("idle"), state_of("idle in transaction (aborted)")
    (('idle', None), ('idle in transaction (aborted)', None))
    >>> state_of("SELECT"), state_of("authentication"), state_of(None)
    (('active', 'SELECT'), ('authentication', None), (None, None))
    """
    if activity is None:
        return None, None
    if activity in ("idle", "idle in transaction", "idle in transaction (aborted)"):
        return activity, None
    if activity in ("authentication", "startup", "fastpath function call"):
        return activity, None
    return "active", activity


def activity_row(backend: PsBackend) -> ActivityRow:
    """A backend as pg_stat_activity would show it, with what its title says and None for the rest.

    >>> from pgdoctor.collect.ps_titles import parse_title
    >>> t = parse_title("postgres: app shop 10.0.0.7(51234) UPDATE waiting")
    >>> row = activity_row(PsBackend(4711, "", t))
    >>> (row.backend_type, row.usename, row.client_addr, row.state, row.wait_event_type, row.query)
    ('client backend', 'app', '10.0.0.7', 'active', 'Lock', 'UPDATE')
    """
    t = backend.parsed
    state, command = state_of(t.activity)
    return ActivityRow(
        pid=backend.pid,
        backend_type=t.kind,
        datname=t.database,
        usename=t.user,
        application_name="",
        client_addr=t.host,
        client_hostname=None,
        state=state,
        wait_event_type="Lock" if t.waiting else None,  # " waiting" is only appended for heavyweight locks
        wait_event=None,
        backend_age_s=None,
        xact_age_s=None,
        query_age_s=None,
        state_age_s=None,
        xmin_age=None,
        query=command,
        blocked_by=[],
    )


def server_info(server: PsServer) -> ServerInfo:
    """What the report header and the capacity rules need, from the files instead of SQL."""
    major = server.version.split(".")[0] if server.version else ""
    settings = [
        SettingRow(
            name=name,
            setting=(server.settings or {}).get(name, ""),
            unit="",
            context="",
            pending_restart=False,
        )
        for name in sorted(CAPACITY_DEFAULTS)
        if server.settings is not None
    ]
    return ServerInfo(
        version_num=int(major) * 10000 if major.isdigit() else 0,
        version=server.version or "(version unknown)",
        current_user=server.os_user,
        is_superuser=False,
        can_read_all_stats=True,  # a title shows the same for every backend
        settings=settings,
    )


def _subject(s: Session) -> str:
    return f"{s.usename or '(none)'}@{s.datname or '(none)'}"


def _by_subject(sessions: Iterable[Session], keep: Callable[[Session], bool]) -> dict[str, list[Session]]:
    out: dict[str, list[Session]] = defaultdict(list)
    for s in sessions:
        if keep(s):
            out[_subject(s)].append(s)
    return dict(sorted(out.items()))


def _pids(sessions: Iterable[Session]) -> tuple[int, ...]:
    return tuple(sorted(s.pid for s in sessions))


def analyze_ps(
    data: PsData,
    *,
    by: str = "user",
    # The same thresholds as over SQL (pgdoctor.analyze.thresholds).
    capacity_warn_pct: float = thresholds.CAPACITY_WARN_PCT,
    capacity_crit_pct: float = thresholds.CAPACITY_CRIT_PCT,
    leak_min_idle: int = thresholds.LEAK_MIN_IDLE,
    leak_share_pct: float = thresholds.LEAK_SHARE_PCT,
) -> ConnectionsReport:
    """Classify, group and measure the backends found in the process list."""
    if by not in GROUP_BY:
        raise ValueError(f"by must be one of {GROUP_BY}")
    server = server_info(data.server)
    every = [to_session(activity_row(b)) for b in data.backends]
    sessions = [s for s in every if s.backend_type == CLIENT_BACKEND]
    background = [s for s in every if s.backend_type != CLIENT_BACKEND]
    cap = capacity_of(server, len(sessions))
    known = data.server.settings is not None
    findings = find_capacity(cap, warn_pct=capacity_warn_pct, crit_pct=capacity_crit_pct) if known else []

    if not sessions:
        findings.append(
            Finding(
                Severity.INFO,
                "process_titles",
                "server",
                f"no client backend title among the {len(background)} processes of postmaster "
                f"{data.server.pid}: no client is connected, or the titles are not PostgreSQL's",
                "process titles need update_process_title (on by default on Linux); reading other users' "
                "processes needs root or the server's operating-system user",
            )
        )
    elif all(s.state is None for s in sessions):
        findings.append(
            Finding(
                Severity.WARNING,
                "process_titles",
                "server",
                f"the titles of {len(sessions)} client backends carry user, database and client but no "
                "state: update_process_title is off, so every session is counted as 'other'",
                "set update_process_title = on (on by default on Linux) and reload the configuration",
                _pids(sessions),
            )
        )

    for subject, members in _by_subject(
        sessions, lambda s: s.cls in ("idle_in_transaction", "idle_in_transaction_aborted")
    ).items():
        findings.append(
            Finding(
                Severity.WARNING,
                "idle_in_transaction",
                subject,
                f"{len(members)} session(s) idle in transaction (the process list does not say for how "
                "long); they hold their locks and snapshot and a connection slot",
                "commit or roll back before slow work in the application; set "
                "idle_in_transaction_session_timeout so the server ends such sessions",
                _pids(members),
            )
        )

    for subject, members in _by_subject(sessions, lambda s: s.cls == "blocked").items():
        findings.append(
            Finding(
                Severity.WARNING,
                "blocked",
                subject,
                f"{len(members)} session(s) waiting on a lock (title ending in 'waiting'); the process "
                "list does not say who holds it: sessions idle in transaction are the usual holders",
                "once a slot is free, `pgdoctor locks` shows the blocking tree and the root blocker",
                _pids(members),
            )
        )

    if known and cap.usable:
        for subject, members in _by_subject(sessions, lambda s: s.cls == "idle").items():
            share = 100.0 * len(members) / cap.usable
            if len(members) < leak_min_idle or share < leak_share_pct:
                continue
            findings.append(
                Finding(
                    Severity.CRITICAL if cap.usage_pct >= capacity_crit_pct else Severity.WARNING,
                    "idle_connections",
                    subject,
                    f"{len(members)} idle connections ({share:.0f}% of usable slots): a pool larger than "
                    "its load, or connections leaked (never returned or closed)",
                    "cap the application's pool (pool_size/max_overflow) and recycle idle connections "
                    "(pool_recycle); set idle_session_timeout (PostgreSQL 14+) or put PgBouncer in front",
                    _pids(members),
                )
            )

    return ConnectionsReport(
        server=server,
        by=by,
        capacity=cap,
        groups=group_sessions(sessions, by),
        sessions=sorted(sessions, key=lambda s: (group_key(s, by), s.cls, s.pid)),
        background=sorted(background, key=lambda s: (s.backend_type, s.pid)),
        findings=sort_findings(findings),
        ps=data.server,
    )
