"""pg_stat_statements itself: whether it can be read here (and exactly what to run or change when it
cannot), its version, and whether its table is full."""

from __future__ import annotations

import re

from pgdoctor.analyze.findings import Finding, Severity
from pgdoctor.analyze.format import duration
from pgdoctor.analyze.thresholds import MAX_FULL_PCT
from pgdoctor.collect.server import ServerInfo
from pgdoctor.collect.statements import (
    NO_ACCESS,
    NOT_CREATED,
    NOT_INSTALLED,
    NOT_PRELOADED,
    UNSUPPORTED,
    Availability,
    StatementsData,
    Totals,
)


class PlanNotTracked(Exception):
    """Statements were asked for in planning-time order where planning time is not recorded."""

    def __init__(self, extension_version: str | None) -> None:
        super().__init__(
            "planning time is not tracked here (pg_stat_statements.track_planning is off"
            + (f", or extension {extension_version} predates it" if extension_version else "")
            + ")"
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


def extension_outdated(ext: Availability) -> Finding | None:
    if not (ext.version and ext.default_version and ext.version != ext.default_version):
        return None
    return Finding(
        Severity.INFO,
        "extension_outdated",
        "pg_stat_statements",
        f"the extension is at version {ext.version} while the server ships {ext.default_version} "
        "(the server was upgraded, the extension was not); pgdoctor reads either",
        f"ALTER EXTENSION pg_stat_statements UPDATE; in database {ext.database}",
    )


def max_reached(data: StatementsData, totals: Totals | None, max_entries: int | None) -> Finding | None:
    """pg_stat_statements.max reached (evictions), or, reading twice, statements gone at the second."""
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
        return Finding(
            Severity.WARNING,
            "max_reached",
            "pg_stat_statements",
            f"pg_stat_statements.max ({max_entries}) was reached: {info.dealloc} deallocation(s){since} "
            "evicted the least-executed entries, so rarely run statements are missing and re-counted "
            f"from zero{interval_note}",
            advice,
        )
    if info is None and totals and max_entries and totals.entries >= MAX_FULL_PCT / 100 * max_entries:
        return Finding(
            Severity.WARNING,
            "max_reached",
            "pg_stat_statements",
            f"{totals.entries} entries of pg_stat_statements.max {max_entries}: the table is full and "
            f"entries are being evicted (extension {data.extension.version} does not count "
            f"deallocations){interval_note}",
            advice,
        )
    if evicted:
        return Finding(
            Severity.INFO,
            "evicted",
            "pg_stat_statements",
            f"{evicted} statement(s) of the first read were gone at the second (evicted or reset): "
            "dropped from the difference",
            "",
        )
    return None
