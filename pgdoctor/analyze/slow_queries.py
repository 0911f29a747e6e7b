"""What eats the server's time: rank pg_stat_statements entries, derive ratios, and say what is wrong."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from pgdoctor.analyze.common import HIDDEN_QUERY, Unusable, insufficient_privilege
from pgdoctor.analyze.findings import Finding, Severity, sort_findings
from pgdoctor.analyze.format import duration
from pgdoctor.collect.server import ServerInfo
from pgdoctor.collect.statements import (
    NO_ACCESS,
    NOT_CREATED,
    NOT_INSTALLED,
    NOT_PRELOADED,
    OK,
    ORDER,
    UNSUPPORTED,
    Availability,
    RunningRow,
    StatementRow,
    StatementsData,
    Totals,
)
from pgdoctor.queries import parse_version

BLOCK_BYTES = 8192  # PostgreSQL's default block size; pg_stat_statements counts blocks


@dataclass(frozen=True)
class Statement:
    """One statement as pgdoctor reports it; times in milliseconds."""

    rank: int
    queryid: int | None
    query: str | None
    user: str | None
    database: str | None
    toplevel: bool
    calls: int
    total_ms: float
    mean_ms: float | None
    plans: int | None
    plan_ms: float | None  # total planning time; None where not tracked
    mean_plan_ms: float | None
    rows: int
    rows_per_call: float | None
    pct_total: float | None  # share of all top-level statement time, in %
    hit_ratio: float | None  # shared-buffer hits / (hits + reads), 0..1; None without block access
    shared_blks_hit: int
    shared_blks_read: int
    temp_blks_read: int
    temp_blks_written: int
    io_blks: int
    io_ms: float
    parallel_workers_to_launch: int | None
    parallel_workers_launched: int | None
    entry_age_s: float | None
    appeared: bool

    @property
    def visible(self) -> bool:
        return self.queryid is not None and self.query != HIDDEN_QUERY

    @property
    def label(self) -> str:
        return f"queryid {self.queryid}" if self.queryid is not None else f"a statement of {self.user}"


@dataclass(frozen=True)
class Running:
    pid: int
    application_name: str
    user: str | None
    database: str | None
    duration_s: float | None
    state: str | None
    wait_event: str | None
    queryid: int | None
    query: str | None


@dataclass(frozen=True)
class SlowQueriesReport:
    server: ServerInfo
    extension: Availability
    sort: str
    limit: int
    database_filter: str | None
    user_filter: str | None
    interval_s: float | None
    totals: Totals | None
    max_entries: int | None  # pg_stat_statements.max
    dealloc: int | None  # pg_stat_statements_info.dealloc (1.9+)
    stats_reset: str | None
    stats_reset_age_s: float | None
    plan_tracked: bool  # pg_stat_statements.track_planning on (and extension 1.8+)
    statements: list[Statement]
    running: list[Running]
    running_min_s: float
    notes: list[str]
    findings: list[Finding]

    @property
    def available(self) -> bool:
        return self.extension.status == OK

    @property
    def unusable(self) -> Unusable | None:
        """Why pg_stat_statements could not be read at all (pgdoctor.exitcodes turns it into 4 or 6)."""
        if self.extension.status == NO_ACCESS:
            return Unusable.NO_ACCESS
        if not self.available:
            return Unusable.UNAVAILABLE
        return None


class PlanNotTracked(Exception):
    """Statements were asked for in planning-time order where planning time is not recorded."""

    def __init__(self, extension_version: str | None) -> None:
        super().__init__(
            "planning time is not tracked here (pg_stat_statements.track_planning is off"
            + (f", or extension {extension_version} predates it" if extension_version else "")
            + ")"
        )


def _bytes(blocks: int) -> str:
    size = float(blocks * BLOCK_BYTES)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.3g}{unit}"
        size /= 1024
    return f"{size:.3g}TB"


def _pct(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 2) if whole > 0 else None


def hit_ratio(hit: int, read: int) -> float | None:
    return round(hit / (hit + read), 4) if hit + read > 0 else None


def _version(text: str) -> tuple[int, ...]:
    try:
        return parse_version(text)
    except ValueError:
        return (0,)


def _work_mem(server: ServerInfo) -> str | None:
    """work_mem as people write it (4MB), from pg_settings' value and unit (kB)."""
    for row in server.settings:
        if row.name == "work_mem":
            if row.unit == "kB" and row.setting.isdigit():
                kb = int(row.setting)
                return f"{kb // 1024}MB" if kb % 1024 == 0 else f"{kb}kB"
            return row.setting + row.unit
    return None


def _setting_on(server: ServerInfo, name: str) -> bool:
    return (server.setting(name) or "").lower() in ("on", "true", "1")


def to_statement(rank: int, row: StatementRow, all_exec_ms: float, plan_tracked: bool) -> Statement:
    plan_ms = row.total_plan_ms if plan_tracked else None
    return Statement(
        rank=rank,
        queryid=row.queryid,
        query=row.query,
        user=row.username,
        database=row.datname,
        toplevel=row.toplevel,
        calls=row.calls,
        total_ms=row.total_exec_ms,
        mean_ms=row.mean_exec_ms,
        plans=row.plans if plan_tracked else None,
        plan_ms=plan_ms,
        mean_plan_ms=plan_ms / row.plans if plan_ms is not None and row.plans else None,
        rows=row.rows,
        rows_per_call=round(row.rows / row.calls, 2) if row.calls else None,
        pct_total=_pct(row.total_exec_ms, all_exec_ms) if row.toplevel else None,
        hit_ratio=hit_ratio(row.shared_blks_hit, row.shared_blks_read),
        shared_blks_hit=row.shared_blks_hit,
        shared_blks_read=row.shared_blks_read,
        temp_blks_read=row.temp_blks_read,
        temp_blks_written=row.temp_blks_written,
        io_blks=row.io_blks,
        io_ms=row.io_ms,
        parallel_workers_to_launch=row.parallel_workers_to_launch,
        parallel_workers_launched=row.parallel_workers_launched,
        entry_age_s=row.entry_age_s,
        appeared=row.appeared,
    )


def to_running(row: RunningRow) -> Running:
    return Running(
        pid=row.pid,
        application_name=row.application_name,
        user=row.usename,
        database=row.datname,
        duration_s=row.duration_s,
        state=row.state,
        wait_event=f"{row.wait_event_type}:{row.wait_event}" if row.wait_event_type else None,
        queryid=row.queryid,
        query=row.query,
    )


def _ident(name: str) -> str:
    """An SQL identifier as it must be written in the advice (quoted unless plain lower case)."""
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'


def availability_finding(ext: Availability, server: ServerInfo) -> Finding | None:
    """Exactly why pg_stat_statements cannot be read, and what to run or change."""
    db = ext.database
    create = f"CREATE EXTENSION pg_stat_statements; in database {db} (as a superuser)"
    preload = ext.preload_libraries
    if ext.status == NOT_INSTALLED:
        return Finding(
            Severity.CRITICAL,
            "extension_not_installed",
            "pg_stat_statements",
            "pg_stat_statements is not installed on this server (it is not among pg_available_extensions): "
            "nothing records statement statistics",
            f"install the PostgreSQL {server.major} contrib package on the database host (Debian/Ubuntu: "
            f"postgresql-contrib or postgresql-{server.major}; RHEL: postgresql{server.major}-contrib), add "
            "pg_stat_statements to shared_preload_libraries, restart PostgreSQL, then " + create,
        )
    if ext.status == NOT_PRELOADED:
        now = (
            f"shared_preload_libraries is '{preload}'"
            if preload is not None
            else "its settings (pg_stat_statements.max) are not defined"
        )
        listed = f"{preload},pg_stat_statements" if preload else "pg_stat_statements"
        then = " (the extension already exists here)" if ext.version else f", then {create}"
        return Finding(
            Severity.CRITICAL,
            "extension_not_preloaded",
            "pg_stat_statements",
            f"pg_stat_statements is not loaded: it is not in shared_preload_libraries ({now}), so no "
            "statement is being counted",
            f"ALTER SYSTEM SET shared_preload_libraries = '{listed}'; and restart PostgreSQL (a reload is "
            f"not enough){then}",
        )
    if ext.status == NOT_CREATED:
        return Finding(
            Severity.CRITICAL,
            "extension_not_created",
            "pg_stat_statements",
            f"pg_stat_statements is loaded (shared_preload_libraries) and counting, but the extension is "
            f"not created in database {db}, so its view cannot be read from here",
            f"{create}: its view then shows the statements of every database; or point --dsn at a "
            "database where it exists",
        )
    if ext.status == NO_ACCESS:
        schema = _ident(ext.schema or "public")
        role = _ident(server.current_user)
        return Finding(
            Severity.CRITICAL,
            "extension_no_access",
            "pg_stat_statements",
            f"role {server.current_user} may not read {schema}.pg_stat_statements in database {db} "
            f"({ext.detail})",
            f"GRANT USAGE ON SCHEMA {schema} TO {role}; GRANT SELECT ON "
            f"{schema}.pg_stat_statements, {schema}.pg_stat_statements_info TO {role};",
        )
    if ext.status == UNSUPPORTED:
        return Finding(
            Severity.CRITICAL,
            "extension_unsupported",
            "pg_stat_statements",
            f"pg_stat_statements is installed at version {ext.version}, older than pgdoctor reads "
            f"({ext.detail})",
            f"ALTER EXTENSION pg_stat_statements UPDATE; in database {db}",
        )
    return None


def analyze(
    data: StatementsData,
    *,
    sort: str = "total",
    limit: int = 10,
    database: str | None = None,
    user: str | None = None,
    # Statements active at least this long are listed under "running now".
    running_min_s: float = 1.0,
    # One statement taking this share of all statement time is the first thing to fix.
    share_warn_pct: float = 30.0,
    share_crit_pct: float = 60.0,
    # ...unless the server has done almost nothing (less than this much statement time in all).
    share_min_total_ms: float = 1000.0,
    # Slow and frequent: mean execution time at least this, called at least this often. 10 ms per call
    # holds a pooled connection long enough to matter at a few hundred calls a second.
    mean_warn_ms: float = 10.0,
    calls_min: int = 1000,
    # Shared-buffer hit ratio below this (with at least hit_min_reads blocks read) means the statement
    # reads from disk or the OS cache ("Monitoring Database Activity: pg_statio" in the docs).
    hit_ratio_min_pct: float = 90.0,
    hit_min_reads: int = 1000,
    # Statistics reset less than this long ago cover only a short window.
    reset_recent_s: float = 3600.0,
    # A statement active this long holds its connection (and its snapshot) that long.
    running_warn_s: float = 60.0,
    running_crit_s: float = 600.0,
) -> SlowQueriesReport:
    """Rank the statements in `sort` order, keep `limit`, and say what eats the server's time."""
    if sort not in ORDER:
        raise ValueError(f"sort must be one of {tuple(ORDER)}")
    server = data.server
    ext = data.extension
    findings: list[Finding] = []
    notes: list[str] = []
    plan_tracked = (
        ext.version is not None
        and _version(ext.version) >= (1, 8)
        and _setting_on(server, "pg_stat_statements.track_planning")
    )

    unavailable = availability_finding(ext, server)
    if unavailable is not None:
        findings.append(unavailable)
    elif sort == "plan" and not plan_tracked:
        raise PlanNotTracked(ext.version)
    if ext.version and ext.default_version and ext.version != ext.default_version and unavailable is None:
        findings.append(
            Finding(
                Severity.INFO,
                "extension_outdated",
                "pg_stat_statements",
                f"the extension is at version {ext.version} while the server ships {ext.default_version} "
                "(the server was upgraded, the extension was not); pgdoctor reads either",
                f"ALTER EXTENSION pg_stat_statements UPDATE; in database {ext.database}",
            )
        )

    top = data.tops.get(sort)
    totals = top.totals if top else None
    rows = list(top.statements) if top else []
    offline_filter = (database is not None and database != data.database_filter) or (
        user is not None and user != data.user_filter
    )
    if database is not None:
        rows = [r for r in rows if r.datname == database]
    if user is not None:
        rows = [r for r in rows if r.username == user]
    if data.extension.status == OK:
        if offline_filter:
            notes.append(
                f"filtered from the top {data.limit} statements per order this snapshot holds; "
                "statements outside those are not seen"
            )
        if limit > data.limit and len(rows) == data.limit:
            notes.append(f"this snapshot holds the top {data.limit} statements per order; showing those")
    all_exec_ms = totals.all_exec_ms if totals else 0.0
    statements = [to_statement(i + 1, r, all_exec_ms, plan_tracked) for i, r in enumerate(rows[:limit])]

    info = data.info
    max_entries = server.int_setting("pg_stat_statements.max", 0) or None
    running = sorted(
        (to_running(r) for r in data.running if (r.duration_s or 0) >= running_min_s),
        key=lambda r: (-(r.duration_s or 0), r.pid),
    )

    if unavailable is None:
        findings += _statement_findings(
            statements,
            totals,
            sort=sort,
            work_mem=_work_mem(server),
            share_warn_pct=share_warn_pct,
            share_crit_pct=share_crit_pct,
            share_min_total_ms=share_min_total_ms,
            mean_warn_ms=mean_warn_ms,
            calls_min=calls_min,
            hit_ratio_min_pct=hit_ratio_min_pct,
            hit_min_reads=hit_min_reads,
        )
        findings += _server_findings(
            data, totals, max_entries, reset_recent_s=reset_recent_s, hit_ratio_min_pct=hit_ratio_min_pct
        )
    findings += _running_findings(running, running_warn_s=running_warn_s, running_crit_s=running_crit_s)
    if totals and totals.hidden and not server.can_read_all_stats:
        findings.append(
            insufficient_privilege(
                server.current_user,
                f"{totals.hidden} statement(s) of other roles show no query text and no queryid: role "
                f"{server.current_user} cannot see them (their time still counts in the totals); "
                "statements running in other roles' sessions are not listed either",
            )
        )

    return SlowQueriesReport(
        server=server,
        extension=ext,
        sort=sort,
        limit=limit,
        database_filter=database if database is not None else data.database_filter,
        user_filter=user if user is not None else data.user_filter,
        interval_s=data.interval_s,
        totals=totals,
        max_entries=max_entries,
        dealloc=info.dealloc if info else None,
        stats_reset=info.stats_reset if info else None,
        stats_reset_age_s=info.stats_reset_age_s if info else None,
        plan_tracked=plan_tracked,
        statements=statements,
        running=running,
        running_min_s=running_min_s,
        notes=notes,
        findings=sort_findings(findings),
    )


def _short(query: str | None, width: int = 50) -> str:
    flat = " ".join((query or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _statement_findings(
    statements: list[Statement],
    totals: Totals | None,
    *,
    sort: str,
    work_mem: str | None,
    share_warn_pct: float,
    share_crit_pct: float,
    share_min_total_ms: float,
    mean_warn_ms: float,
    calls_min: int,
    hit_ratio_min_pct: float,
    hit_min_reads: int,
) -> list[Finding]:
    findings: list[Finding] = []
    all_ms = totals.all_exec_ms if totals else 0.0
    for s in statements:
        what = f"({s.user or '?'}@{s.database or '?'}: {_short(s.query)})"
        if s.pct_total is not None and s.pct_total >= share_warn_pct and all_ms >= share_min_total_ms:
            findings.append(
                Finding(
                    Severity.CRITICAL if s.pct_total >= share_crit_pct else Severity.WARNING,
                    "dominant_statement",
                    s.label,
                    f"one statement takes {s.pct_total:.0f}% of all statement time "
                    f"({duration(s.total_ms / 1000)} of {duration(all_ms / 1000)}; {s.calls} calls, "
                    f"{duration((s.mean_ms or 0) / 1000)} each) {what}",
                    "fix this one first: EXPLAIN (ANALYZE, BUFFERS) it; a missing index shows as a Seq Scan "
                    "with many rows removed by filter",
                )
            )
        if s.mean_ms is not None and s.mean_ms >= mean_warn_ms and s.calls >= calls_min:
            findings.append(
                Finding(
                    Severity.WARNING,
                    "slow_frequent",
                    s.label,
                    f"{s.calls} calls taking {duration(s.mean_ms / 1000)} each on average "
                    f"({duration(s.total_ms / 1000)} in all) "
                    f"{what}: each call holds a connection that long",
                    "EXPLAIN (ANALYZE, BUFFERS) it for a missing index; for an update that waits, look for "
                    "lock contention on the same rows (`pgdoctor locks`) or batch the writes",
                )
            )
        if s.temp_blks_written > 0:
            per_call = s.temp_blks_written // s.calls if s.calls else s.temp_blks_written
            findings.append(
                Finding(
                    Severity.WARNING,
                    "temp_spill",
                    s.label,
                    f"writes {_bytes(s.temp_blks_written)} to temp files ({_bytes(per_call)} per call) "
                    f"{what}: its sorts or hashes do not fit in work_mem (server default {work_mem or '?'})",
                    "EXPLAIN (ANALYZE, BUFFERS) it (look for 'external merge' or hash batches > 1); add an "
                    "index that avoids the sort, or raise work_mem for this query or role only "
                    "(SET LOCAL work_mem / ALTER ROLE ... SET work_mem), not server-wide",
                )
            )
        if (
            s.hit_ratio is not None
            and s.shared_blks_read >= hit_min_reads
            and s.hit_ratio * 100 < hit_ratio_min_pct
        ):
            findings.append(
                Finding(
                    Severity.WARNING,
                    "low_hit_ratio",
                    s.label,
                    f"only {s.hit_ratio * 100:.1f}% of its block accesses are found in shared buffers; it "
                    f"read {_bytes(s.shared_blks_read)} from disk or the OS cache {what}",
                    "an index that touches fewer blocks usually helps more than a larger shared_buffers; "
                    "EXPLAIN (ANALYZE, BUFFERS) shows where the reads happen",
                )
            )
    if totals and sort != "temp":
        shown = sum(1 for s in statements if s.temp_blks_written > 0)
        if totals.spilling > shown:
            findings.append(
                Finding(
                    Severity.INFO,
                    "temp_spill",
                    "server",
                    f"{totals.spilling} statement(s) in all write temp files, {totals.spilling - shown} of "
                    "them not listed here",
                    "`pgdoctor slow-queries --sort temp` lists them",
                )
            )
    return findings


def _server_findings(
    data: StatementsData,
    totals: Totals | None,
    max_entries: int | None,
    *,
    reset_recent_s: float,
    hit_ratio_min_pct: float,
) -> list[Finding]:
    findings: list[Finding] = []
    info = data.info
    evicted = totals.evicted if totals else None
    interval_note = (
        f"; {evicted} statement(s) of the first read were gone at the second (dropped from the difference)"
        if evicted
        else ""
    )
    advice = (
        f"raise pg_stat_statements.max (now {max_entries}; needs a restart), and look for statements that "
        "differ only in ways query jumbling does not fold (temp table names, generated SQL)"
    )
    since = (
        f" since the statistics were reset {duration(info.stats_reset_age_s)} ago"
        if info and (info.stats_reset_age_s is not None)
        else ""
    )
    if info is not None and info.dealloc > 0:
        findings.append(
            Finding(
                Severity.WARNING,
                "max_reached",
                "pg_stat_statements",
                f"pg_stat_statements.max ({max_entries}) was reached: {info.dealloc} deallocation(s){since} "
                "evicted the least-executed entries, so rarely run statements are missing and re-counted "
                f"from zero{interval_note}",
                advice,
            )
        )
    elif info is None and totals and max_entries and totals.entries >= 0.95 * max_entries:
        findings.append(
            Finding(
                Severity.WARNING,
                "max_reached",
                "pg_stat_statements",
                f"{totals.entries} entries of pg_stat_statements.max {max_entries}: the table is full and "
                f"entries are being evicted (extension {data.extension.version} does not count "
                f"deallocations){interval_note}",
                advice,
            )
        )
    elif evicted:
        findings.append(
            Finding(
                Severity.INFO,
                "evicted",
                "pg_stat_statements",
                f"{evicted} statement(s) of the first read were gone at the second (evicted or reset): "
                "dropped from the difference",
                "",
            )
        )
    if info is not None and info.stats_reset_age_s is not None and info.stats_reset_age_s < reset_recent_s:
        findings.append(
            Finding(
                Severity.INFO,
                "stats_reset",
                "pg_stat_statements",
                f"statistics were reset {duration(info.stats_reset_age_s)} ago (at {info.stats_reset}): the "
                "figures cover only that window",
                "",
            )
        )
    if totals and data.interval_s is None:
        ratio = hit_ratio(totals.all_shared_blks_hit, totals.all_shared_blks_read)
        if ratio is not None and ratio * 100 < hit_ratio_min_pct and totals.all_shared_blks_read >= 10_000:
            findings.append(
                Finding(
                    Severity.WARNING,
                    "low_hit_ratio",
                    "server",
                    f"all statements together find only {ratio * 100:.1f}% of their blocks in shared "
                    f"buffers ({_bytes(totals.all_shared_blks_read)} read from disk or the OS cache)",
                    "`--sort io` lists the statements that read most; check shared_buffers against the "
                    "working set (`pgdoctor recommend`)",
                )
            )
    return findings


def _running_findings(
    running: list[Running], *, running_warn_s: float, running_crit_s: float
) -> list[Finding]:
    by_app: dict[str, list[Running]] = defaultdict(list)
    for r in running:
        if (r.duration_s or 0) >= running_warn_s:
            by_app[r.application_name or "(none)"].append(r)
    findings = []
    for app, members in sorted(by_app.items()):
        longest = max(r.duration_s or 0 for r in members)
        findings.append(
            Finding(
                Severity.CRITICAL if longest >= running_crit_s else Severity.WARNING,
                "long_running",
                app,
                f"{len(members)} statement(s) running for up to {duration(longest)}; each holds its "
                "connection (and its snapshot) until it ends",
                "look at them below; pg_cancel_backend(pid) stops one; statement_timeout bounds them",
                tuple(sorted(r.pid for r in members)),
            )
        )
    return findings
