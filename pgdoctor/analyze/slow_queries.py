"""What eats the server's time: rank pg_stat_statements entries, derive ratios, and say what is wrong.

Each finding rule is a function of its own below; `analyze` composes them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from pgdoctor.analyze import actions
from pgdoctor.analyze.activity import running as running_now
from pgdoctor.analyze.common import Unusable, insufficient_privilege
from pgdoctor.analyze.findings import Finding, Severity, sort_findings
from pgdoctor.analyze.format import duration
from pgdoctor.analyze.running_groups import RunningGroup, blocked_by_queryid, group_running
from pgdoctor.analyze.slow_query_rows import (
    Running,
    Statement,
    blocks_text,
    hit_ratio,
    setting_on,
    to_running,
    to_statement,
    version_of,
    work_mem_text,
)
from pgdoctor.analyze.slow_query_server import (
    PlanNotTracked,
    availability_finding,
    extension_outdated,
    max_reached,
)
from pgdoctor.analyze.thresholds import (
    CALLS_MIN,
    HIT_MIN_READS,
    HIT_RATIO_MIN_PCT,
    MEAN_WARN_MS,
    RESET_RECENT_S,
    RUNNING_CRIT_S,
    RUNNING_MIN_S,
    RUNNING_WARN_S,
    SERVER_HIT_MIN_READS,
    SHARE_CRIT_PCT,
    SHARE_MIN_TOTAL_MS,
    SHARE_WARN_PCT,
)
from pgdoctor.collect.server import ServerInfo
from pgdoctor.collect.statements import (
    NO_ACCESS,
    OK,
    ORDER,
    Availability,
    StatementRow,
    StatementsData,
    Totals,
)

__all__ = ["PlanNotTracked", "Running", "SlowQueriesReport", "Statement", "Thresholds", "analyze"]


@dataclass(frozen=True)
class Thresholds:
    share_warn_pct: float = SHARE_WARN_PCT
    share_crit_pct: float = SHARE_CRIT_PCT
    share_min_total_ms: float = SHARE_MIN_TOTAL_MS
    mean_warn_ms: float = MEAN_WARN_MS
    calls_min: int = CALLS_MIN
    hit_ratio_min_pct: float = HIT_RATIO_MIN_PCT
    hit_min_reads: int = HIT_MIN_READS
    reset_recent_s: float = RESET_RECENT_S
    running_warn_s: float = RUNNING_WARN_S
    running_crit_s: float = RUNNING_CRIT_S

    def low_hit(self, ratio: float | None, reads: int) -> bool:
        """A statement's hit ratio (0..1) under the minimum, over enough reads to matter."""
        return ratio is not None and reads >= self.hit_min_reads and ratio * 100 < self.hit_ratio_min_pct


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
    thresholds: Thresholds  # what the findings were measured against (the renderer highlights by it)
    notes: list[str]
    findings: list[Finding]
    # the running ones grouped by (application, user, database, normalised query), with a count
    running_groups: list[RunningGroup] = field(default_factory=list)

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


def _short(query: str | None, width: int = 50) -> str:
    flat = " ".join((query or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _about(s: Statement) -> str:
    return f"({s.user or '?'}@{s.database or '?'}: {_short(s.query)})"


def dominant_statement(
    s: Statement, all_ms: float, t: Thresholds, blocked: dict[int, list[int]] | None = None
) -> Finding | None:
    if s.pct_total is None or s.pct_total < t.share_warn_pct or all_ms < t.share_min_total_ms:
        return None
    waiting = sorted((blocked or {}).get(s.queryid or 0, [])) if s.queryid is not None else []
    if waiting:
        # pg_stat_statements counts the time a statement waited on a lock as its execution time: a
        # statement whose sessions wait on a lock now is slow because of the blocker, not of a plan
        return Finding(
            Severity.CRITICAL if s.pct_total >= t.share_crit_pct else Severity.WARNING,
            "dominant_statement",
            s.label,
            f"one statement takes {s.pct_total:.0f}% of all statement time "
            f"({duration(s.total_ms / 1000)} of {duration(all_ms / 1000)}; {s.calls} calls) {_about(s)}, "
            f"and {len(waiting)} of its sessions are waiting on a lock right now: pg_stat_statements "
            "counts time spent waiting on a lock as execution time",
            "look at the blocker, not at the plan or an index: `pgdoctor locks` shows who blocks these "
            "sessions (the root blocker) and how to end it",
            tuple(waiting),
        )
    return Finding(
        Severity.CRITICAL if s.pct_total >= t.share_crit_pct else Severity.WARNING,
        "dominant_statement",
        s.label,
        f"one statement takes {s.pct_total:.0f}% of all statement time "
        f"({duration(s.total_ms / 1000)} of {duration(all_ms / 1000)}; {s.calls} calls, "
        f"{duration((s.mean_ms or 0) / 1000)} each) {_about(s)}",
        "fix this one first: EXPLAIN (ANALYZE, BUFFERS) it; a missing index shows as a Seq Scan "
        "with many rows removed by filter",
    )


def slow_frequent(s: Statement, t: Thresholds) -> Finding | None:
    if s.mean_ms is None or s.mean_ms < t.mean_warn_ms or s.calls < t.calls_min:
        return None
    return Finding(
        Severity.WARNING,
        "slow_frequent",
        s.label,
        f"{s.calls} calls taking {duration(s.mean_ms / 1000)} each on average "
        f"({duration(s.total_ms / 1000)} in all) {_about(s)}: each call holds a connection that long",
        "EXPLAIN (ANALYZE, BUFFERS) it for a missing index; for an update that waits, look for "
        "lock contention on the same rows (`pgdoctor locks`) or batch the writes",
    )


def temp_spill(s: Statement, work_mem: str | None) -> Finding | None:
    if s.temp_blks_written <= 0:
        return None
    per_call = s.temp_blks_written // s.calls if s.calls else s.temp_blks_written
    return Finding(
        Severity.WARNING,
        "temp_spill",
        s.label,
        f"writes {blocks_text(s.temp_blks_written)} to temp files ({blocks_text(per_call)} per call) "
        f"{_about(s)}: its sorts or hashes do not fit in work_mem (server default {work_mem or '?'})",
        "EXPLAIN (ANALYZE, BUFFERS) it (look for 'external merge' or hash batches > 1); add an "
        "index that avoids the sort, or raise work_mem for this query or role only "
        "(SET LOCAL work_mem / ALTER ROLE ... SET work_mem), not server-wide",
    )


def low_hit_ratio(s: Statement, t: Thresholds) -> Finding | None:
    if not t.low_hit(s.hit_ratio, s.shared_blks_read):
        return None
    return Finding(
        Severity.WARNING,
        "low_hit_ratio",
        s.label,
        f"only {(s.hit_ratio or 0) * 100:.1f}% of its block accesses are found in shared buffers; it "
        f"read {blocks_text(s.shared_blks_read)} from disk or the OS cache {_about(s)}",
        "an index that touches fewer blocks usually helps more than a larger shared_buffers; "
        "EXPLAIN (ANALYZE, BUFFERS) shows where the reads happen",
    )


def spills_not_listed(statements: list[Statement], totals: Totals | None, sort: str) -> Finding | None:
    if not totals or sort == "temp":
        return None
    shown = sum(1 for s in statements if s.temp_blks_written > 0)
    if totals.spilling <= shown:
        return None
    return Finding(
        Severity.INFO,
        "temp_spill",
        "server",
        f"{totals.spilling} statement(s) in all write temp files, {totals.spilling - shown} of "
        "them not listed here",
        "`pgdoctor slow-queries --sort temp` lists them",
    )


def statement_findings(
    statements: list[Statement],
    totals: Totals | None,
    sort: str,
    work_mem: str | None,
    t: Thresholds,
    blocked: dict[int, list[int]] | None = None,
) -> list[Finding]:
    all_ms = totals.all_exec_ms if totals else 0.0
    found = [
        rule
        for s in statements
        for rule in (dominant_statement(s, all_ms, t, blocked), slow_frequent(s, t), temp_spill(s, work_mem),
                     low_hit_ratio(s, t))
    ] + [spills_not_listed(statements, totals, sort)]  # fmt: skip
    return [f for f in found if f is not None]


def stats_reset(data: StatementsData, t: Thresholds) -> Finding | None:
    info = data.info
    if info is None or info.stats_reset_age_s is None or info.stats_reset_age_s >= t.reset_recent_s:
        return None
    return Finding(
        Severity.INFO,
        "stats_reset",
        "pg_stat_statements",
        f"statistics were reset {duration(info.stats_reset_age_s)} ago (at {info.stats_reset}): the "
        "figures cover only that window",
        "",
    )


def server_hit_ratio(data: StatementsData, totals: Totals | None, t: Thresholds) -> Finding | None:
    if not totals or data.interval_s is not None:
        return None
    ratio = hit_ratio(totals.all_shared_blks_hit, totals.all_shared_blks_read)
    if (
        ratio is None
        or ratio * 100 >= t.hit_ratio_min_pct
        or totals.all_shared_blks_read < SERVER_HIT_MIN_READS
    ):
        return None
    return Finding(
        Severity.WARNING,
        "low_hit_ratio",
        "server",
        f"all statements together find only {ratio * 100:.1f}% of their blocks in shared "
        f"buffers ({blocks_text(totals.all_shared_blks_read)} read from disk or the OS cache)",
        "`--sort io` lists the statements that read most; check shared_buffers against the "
        "working set (`pgdoctor recommend`)",
    )


def long_running(running: list[Running], t: Thresholds) -> list[Finding]:
    by_app: dict[str, list[Running]] = defaultdict(list)
    for r in running:
        if (r.duration_s or 0) >= t.running_warn_s:
            by_app[r.application_name or "(none)"].append(r)
    findings = []
    for app, members in sorted(by_app.items()):
        longest = max(r.duration_s or 0 for r in members)
        findings.append(
            Finding(
                Severity.CRITICAL if longest >= t.running_crit_s else Severity.WARNING,
                "long_running",
                app,
                f"{len(members)} statement(s) running for up to {duration(longest)}; each holds its "
                "connection (and its snapshot) until it ends",
                "look at them below; pg_cancel_backend(pid) stops one; statement_timeout bounds them",
                tuple(sorted(r.pid for r in members)),
                actions.cancel_statements(members),
            )
        )
    return findings


def hidden_statements(totals: Totals | None, server: ServerInfo) -> Finding | None:
    if not (totals and totals.hidden) or server.can_read_all_stats:
        return None
    return insufficient_privilege(
        server.current_user,
        f"{totals.hidden} statement(s) of other roles show no query text and no queryid: role "
        f"{server.current_user} cannot see them (their time still counts in the totals); "
        "statements running in other roles' sessions are not listed either",
    )


def _notes(data: StatementsData, rows: list[StatementRow], limit: int, filtered: bool) -> list[str]:
    """What a snapshot cannot show: statements outside the top it holds."""
    notes = []
    held = data.snapshot_per_order
    if data.extension.status == OK and held is not None:
        if filtered:
            notes.append(
                f"filtered from the top {held} statements per order this snapshot holds; "
                "statements outside those are not seen"
            )
        if limit > held and len(rows) == held:
            notes.append(f"this snapshot holds the top {held} statements per order; showing those")
    return notes


def analyze(
    data: StatementsData,
    *,
    sort: str = "total",
    limit: int = 10,
    database: str | None = None,
    user: str | None = None,
    running_min_s: float = RUNNING_MIN_S,
    share_warn_pct: float = SHARE_WARN_PCT,
    share_crit_pct: float = SHARE_CRIT_PCT,
    share_min_total_ms: float = SHARE_MIN_TOTAL_MS,
    mean_warn_ms: float = MEAN_WARN_MS,
    calls_min: int = CALLS_MIN,
    hit_ratio_min_pct: float = HIT_RATIO_MIN_PCT,
    hit_min_reads: int = HIT_MIN_READS,
    reset_recent_s: float = RESET_RECENT_S,
    running_warn_s: float = RUNNING_WARN_S,
    running_crit_s: float = RUNNING_CRIT_S,
) -> SlowQueriesReport:
    """Rank the statements in `sort` order, keep `limit`, and say what eats the server's time."""
    if sort not in ORDER:
        raise ValueError(f"sort must be one of {tuple(ORDER)}")
    t = Thresholds(
        share_warn_pct, share_crit_pct, share_min_total_ms, mean_warn_ms, calls_min, hit_ratio_min_pct,
        hit_min_reads, reset_recent_s, running_warn_s, running_crit_s,
    )  # fmt: skip
    server = data.server
    ext = data.extension
    plan_tracked = (
        ext.version is not None
        and version_of(ext.version) >= (1, 8)
        and setting_on(server, "pg_stat_statements.track_planning")
    )
    unavailable = availability_finding(ext, server)
    if unavailable is None and sort == "plan" and not plan_tracked:
        raise PlanNotTracked(ext.version)

    top = data.tops.get(sort)
    totals = top.totals if top else None
    rows = list(top.statements) if top else []
    filtered = database is not None or user is not None  # a live read filtered on the server already
    rows = [r for r in rows if database is None or r.datname == database]
    rows = [r for r in rows if user is None or r.username == user]
    all_exec_ms = totals.all_exec_ms if totals else 0.0
    statements = [to_statement(i + 1, r, all_exec_ms, plan_tracked) for i, r in enumerate(rows[:limit])]
    info = data.info
    max_entries = server.int_setting("pg_stat_statements.max", 0) or None
    running = sorted(
        (to_running(r) for r in running_now(data.activity) if (r.query_age_s or 0) >= running_min_s),
        key=lambda r: (-(r.duration_s or 0), r.pid),
    )

    findings: list[Finding | None] = [unavailable] if unavailable else [extension_outdated(ext)]
    if unavailable is None:
        blocked = blocked_by_queryid(to_running(r) for r in running_now(data.activity))
        findings += statement_findings(statements, totals, sort, work_mem_text(server), t, blocked)
        findings += [max_reached(data, totals, max_entries), stats_reset(data, t)]
        findings.append(server_hit_ratio(data, totals, t))
    findings += [*long_running(running, t), hidden_statements(totals, server)]

    return SlowQueriesReport(
        server=server,
        extension=ext,
        sort=sort,
        limit=limit,
        database_filter=database,
        user_filter=user,
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
        running_groups=group_running(running),
        thresholds=t,
        notes=_notes(data, rows, limit, filtered),
        findings=sort_findings([f for f in findings if f is not None]),
    )
