"""Draw a TriageReport: what to do first, the ranked problems with their evidence, the blocking trees and
who holds the connections; and its JSON contract (the problems, every finding, and each command's own
report as that command's JSON)."""

from __future__ import annotations

from typing import Any

from pgdoctor.analyze.findings import Finding
from pgdoctor.analyze.problems import Problem, Sourced
from pgdoctor.analyze.triage import TriageReport
from pgdoctor.render import connections as render_connections
from pgdoctor.render import locks as render_locks
from pgdoctor.render import slow_queries as render_slow_queries
from pgdoctor.render.common import pooler_note, server_json, shorten
from pgdoctor.render.document import (
    SEVERITY_STYLE,
    Cell,
    Column,
    Document,
    Section,
    Styled,
    Table,
    Text,
    pid_list,
)

NEVER_RUN = "(pgdoctor prints these statements, it never runs them)"


def problems_line(report: TriageReport) -> Text:
    if not report.problems:
        return Text(
            ["No problems: nothing at warning or above in connections, locks or slow-queries."], "green"
        )
    counts: dict[str, int] = {}
    for p in report.problems:
        counts[p.severity.value] = counts.get(p.severity.value, 0) + 1
    parts = ", ".join(f"{n} {sev}" for sev, n in counts.items())
    style = SEVERITY_STYLE[report.problems[0].severity.value]
    return Text([f"{len(report.problems)} problem(s): {parts}."], style)


def headline(report: TriageReport) -> list[Section]:
    capacity = render_connections.capacity_line(report.connections)
    locks = render_locks.headline(report.locks)
    lines = [*capacity.lines, locks.lines[0]]
    if report.pgbouncer is not None:
        pools = report.pgbouncer.pools
        waiting = sum(p.cl_waiting for p in pools)
        version = report.pgbouncer.version
        name = version if version.startswith("PgBouncer") else f"PgBouncer {version}"
        lines.append(
            f"{name}: {report.pgbouncer.clients_total} clients of "
            f"max_client_conn {report.pgbouncer.max_client_conn}, {waiting} waiting in {len(pools)} pool(s)"
        )
    if report.pgbouncer_error is not None:
        lines.append(f"PgBouncer: not read ({report.pgbouncer_error})")
    return [Text(lines), problems_line(report)]


def evidence_line(s: Sourced) -> str:
    f = s.finding
    return f"{s.command}: {f.severity.value.upper()} {f.code} [{f.subject}]: {f.message}"


def problem_lines(p: Problem, report: TriageReport, full: bool) -> list[str]:
    lines = [f"{p.rank}. {p.severity.value.upper()} {p.subject}: {p.message}"]
    if p.advice:
        lines.append(f"   -> {p.advice}")
    lines += [f"   sql: {action}" for action in p.actions]
    impact = p.impact
    held = [f"{impact.sessions_blocked} session(s) blocked"] if impact.sessions_blocked else []
    held += [f"{impact.clients_waiting} client(s) waiting in PgBouncer"] if impact.clients_waiting else []
    held += [f"{impact.slots_held} connection slot(s) held"] if impact.slots_held else []
    if held:
        lines.append(f"   impact: {', '.join(held)}")
    if p.pids:
        lines.append(f"   pids: {pid_list(p.pids)}")
    if len(p.evidence) > 1 or p.kind != "findings":
        lines.append(f"   evidence ({', '.join(p.codes)}):")
        for i in p.evidence:
            text = evidence_line(report.findings[i])
            lines.append(f"     - {text if full else shorten(text, 200)}")
    return lines


def first_section(report: TriageReport, full: bool) -> list[Section]:
    if not report.problems:
        return []
    top = report.problems[0]
    lines = ["What to do first", f"{top.severity.value.upper()} {top.subject}: {top.message}"]
    lines += [f"  -> {top.advice}"] if top.advice else []
    lines += [f"  sql: {action}" for action in top.actions]
    lines += [f"  {NEVER_RUN}"] if top.actions else []
    return [Text(lines, SEVERITY_STYLE[top.severity.value])]


def problems_table(report: TriageReport, full: bool) -> Table:
    columns = [
        Column("#", "right"),
        Column("severity"),
        Column("subject"),
        Column("held up", "right"),
        Column("slots", "right"),
        Column("codes"),
        Column("from"),
        Column("what"),
    ]
    rows: list[list[Cell]] = [
        [
            p.rank,
            Styled(p.severity.value, SEVERITY_STYLE[p.severity.value]),
            p.subject,
            p.impact.held_up,
            p.impact.slots_held,
            ", ".join(p.codes),
            ", ".join(p.sources),
            p.message if full else shorten(p.message, 80),
        ]
        for p in report.problems
    ]
    return Table("Problems, most urgent first", columns, rows)


def details_section(report: TriageReport, full: bool) -> Text:
    lines = ["Problems in detail"]
    for p in report.problems:
        lines += problem_lines(p, report, full)
    if any(p.actions for p in report.problems):
        lines.append(NEVER_RUN)
    return Text(lines)


def notes_section(report: TriageReport) -> list[Section]:
    notes = report.notes
    if not notes:
        return []
    return [Text(["Notes", *(f"  {evidence_line(s)}" for s in notes)], "cyan")]


def document(report: TriageReport, *, full: bool = False) -> Document:
    width = 0 if full else 60
    sections: list[Section] = [*headline(report), *first_section(report, full)]
    primary = len(sections)
    sections.append(problems_table(report, full))
    if report.problems:
        sections.append(details_section(report, full))
    if report.locks.trees:
        sections.append(render_locks.trees_section(report.locks, width))
    sections.append(render_connections.groups_table(report.connections))
    sections += notes_section(report)
    sections += pooler_note(report.server)
    return Document(
        f"pgdoctor triage: PostgreSQL {report.server.version}", sections, [], primary, show_findings=False
    )


def finding_json(s: Sourced) -> dict[str, Any]:
    """A finding as its command's JSON writes it (every field it has), with the command."""
    f: Finding = s.finding
    return {"command": s.command, **f.to_json()}


def problem_json(p: Problem) -> dict[str, Any]:
    return {
        "rank": p.rank,
        "kind": p.kind,
        "severity": p.severity.value,
        "subject": p.subject,
        "message": p.message,
        "advice": p.advice,
        "actions": list(p.actions),
        "codes": list(p.codes),
        "sources": list(p.sources),
        "pids": list(p.pids),
        "root_pid": p.root_pid,
        "impact": {
            "sessions_blocked": p.impact.sessions_blocked,
            "clients_waiting": p.impact.clients_waiting,
            "slots_held": p.impact.slots_held,
        },
        "findings": list(p.evidence),
    }


def to_json(report: TriageReport) -> dict[str, Any]:
    pgbouncer = None
    if report.pgbouncer is not None:
        from pgdoctor.render import pgbouncer as render_pgbouncer

        pgbouncer = render_pgbouncer.to_json(report.pgbouncer)
    return {
        "command": "triage",
        "server": server_json(report.server),
        "problems": [problem_json(p) for p in report.problems],
        "findings": [finding_json(s) for s in report.findings],
        "connections": render_connections.to_json(report.connections),
        "locks": render_locks.to_json(report.locks),
        "slow_queries": render_slow_queries.to_json(report.slow_queries),
        "pgbouncer": pgbouncer,
        "pgbouncer_error": report.pgbouncer_error,
    }
