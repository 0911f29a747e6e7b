"""Draw a LocksReport: the blocking trees, root blockers, waiting sessions, the lock table; and JSON."""

from __future__ import annotations

from typing import Any

from pgdoctor.analyze.format import duration
from pgdoctor.analyze.lock_graph import TreeNode, Waiter
from pgdoctor.analyze.lock_objects import summary_object
from pgdoctor.analyze.locks import IDLE_IN_XACT, LocksReport, Root
from pgdoctor.render.common import pooler_note, round_s, server_json, shorten
from pgdoctor.render.document import (
    Cell,
    Column,
    Document,
    Node,
    Section,
    Styled,
    Table,
    Text,
    Trees,
    pid_list,
)

ROOT_STYLE = "bold red"
WAIT_STYLE = "yellow"


def wait_text(w: Waiter) -> str:
    """The wait time; `<=` when it is the statement's age (no pg_locks.waitstart) rather than the wait's."""
    if w.wait_s is None:
        return "?"
    return duration(w.wait_s) if w.wait_source == "waitstart" else f"<={duration(w.wait_s)}"


def lock_text(w: Waiter) -> str:
    what = f"{w.mode or 'a'} {w.locktype} lock" if w.mode else f"a {w.locktype} lock"
    return f"{what} on {w.object}" if w.object else what


def root_state(r: Root) -> tuple[str, float | None]:
    """What a root blocker is doing, and for how long (None: not known, or not a session)."""
    if r.kind == "prepared":
        return "prepared transaction", None
    if r.kind == "gone":
        return "no longer in pg_stat_activity", None
    return r.state or r.backend_type or "?", r.state_age_s if r.state else None


def root_state_text(r: Root) -> str:
    state, age = root_state(r)
    return state if age is None else f"{state} for {duration(age)}"


def root_label(r: Root, width: int) -> Cell:
    head = f"pid {r.pid}" if r.kind != "prepared" else "a prepared transaction (pid 0)"
    parts = [head]
    if r.application_name is not None:
        parts[0] += f" {r.application_name or '(none)'}"
    parts.append(root_state_text(r))
    if r.xact_age_s is not None:
        parts.append(f"transaction open {duration(r.xact_age_s)}")
    parts.append(f"holds up {r.blocks_total}")
    if r.query:
        parts.append(f"last query: {shorten(r.query, width)}")
    if r.action:
        parts.append(f"run: {r.action}")
    style = ROOT_STYLE if r.state in IDLE_IN_XACT else "bold"
    return Styled(" | ".join(parts), style)


def waiter_label(node: TreeNode, w: Waiter | None, width: int) -> Cell:
    if w is None:
        return f"pid {node.pid}"
    text = f"pid {node.pid} {w.application_name or '(none)'} waits {wait_text(w)} for {lock_text(w)}"
    if w.query:
        text += f" | {shorten(w.query, width)}"
    marks = []
    if node.also_blocked_by:
        marks.append(f"also waits on {', '.join(map(str, node.also_blocked_by))}")
    if not w.shown:
        marks.append("waits less than --min-wait")
    if marks:
        text += f"  [{'; '.join(marks)}]"
    return Styled(text, "dim" if not w.shown else WAIT_STYLE)


def _waiters_named(pids: tuple[int, ...], report: LocksReport) -> str:
    if len(pids) > 4:
        return f"pids {pid_list(list(pids))}"
    return ", ".join(f"pid {p} {report.waiter_index[p].application_name or '(none)'}" for p in pids)


def tree_node(node: TreeNode, report: LocksReport, width: int) -> Node:
    w = report.waiter_index.get(node.pid)
    return Node(waiter_label(node, w, width), _below(node, report, width))


def _below(node: TreeNode, report: LocksReport, width: int) -> list[Node]:
    below = [tree_node(c, report, width) for c in node.children]
    if node.also_blocks:
        below.append(
            Node(
                Styled(
                    f"also blocks {_waiters_named(node.also_blocks, report)} (drawn in full elsewhere)", "dim"
                )
            )
        )
    if node.cycle_to:
        below.append(
            Node(
                Styled(
                    f"blocks {_waiters_named(node.cycle_to, report)}, further up this branch: a cycle",
                    ROOT_STYLE,
                )
            )
        )
    return below


def trees_section(report: LocksReport, width: int) -> Trees:
    roots_by_pid = {r.pid: r for r in report.roots}
    nodes: list[Node] = []
    for t in report.trees:
        r = roots_by_pid.get(t.pid)
        if r is not None:
            label = root_label(r, width)
        else:
            w = report.waiter_index.get(t.pid)
            text = deadlock_text(report, t.pid) + ": "
            label = Styled(text + text_of_label(waiter_label(t, w, width)), ROOT_STYLE)
        nodes.append(Node(label, _below(t, report, width)))
    return Trees("Who blocks whom", nodes)


def text_of_label(cell: Cell) -> str:
    return cell.text if isinstance(cell, Styled) else str(cell)


def deadlock_text(report: LocksReport, pid: int) -> str:
    """`deadlock cycle a -> b -> c` for a group that is one cycle; a tangle by its members, and the one
    on every cycle if there is one."""
    group = next((g for g in report.deadlocks if g.pids[0] == pid), None)
    if group is None:
        return f"deadlock cycle {pid}"
    if group.simple:
        return f"deadlock cycle {' -> '.join(map(str, group.pids))}"
    text = f"deadlock of {len(group.pids)} sessions in intertwined cycles ({pid_list(list(group.pids))}"
    if group.breaks_all is not None:
        text += f"; pid {group.breaks_all} is on every cycle"
    return text + ")"


def roots_table(report: LocksReport, full: bool) -> Table:
    columns = [
        Column("pid", "right"),
        Column("application"),
        Column("user"),
        Column("state"),
        Column("in state", "right"),
        Column("xact age", "right"),
        Column("blocks", "right"),
        Column("blocks in all", "right"),
        Column("last query"),
    ]
    rows: list[list[Cell]] = [
        [
            r.pid,
            r.application_name,
            r.usename,
            Styled(root_state(r)[0], ROOT_STYLE if r.state in IDLE_IN_XACT else ""),
            duration(r.state_age_s),
            duration(r.xact_age_s),
            r.blocks_direct,
            r.blocks_total,
            shorten(r.query, 0 if full else 50),
        ]
        for r in report.roots
    ]
    return Table("Root blockers", columns, rows)


def actions_text(report: LocksReport) -> Text:
    """The SQL that frees each root blocker, one whole line each (never cut by a table's width)."""
    lines = ["To free them (pgdoctor prints this, it never runs it):"]
    for r in report.roots:
        if r.action:
            lines.append(
                f"  {r.action}  -- {r.application_name or r.kind}, {root_state_text(r)}, "
                f"holds up {r.blocks_total}"
            )
    return Text(lines)


def waiting_table(report: LocksReport, full: bool) -> Table:
    columns = [
        Column("pid", "right"),
        Column("application"),
        Column("user"),
        Column("waits", "right"),
        Column("lock type"),
        Column("mode"),
        Column("object"),
        Column("blocked by"),
        Column("query"),
    ]
    rows: list[list[Cell]] = [
        [
            w.pid,
            w.application_name,
            w.usename,
            wait_text(w),
            w.locktype,
            w.mode,
            w.object,
            ",".join(map(str, w.blocked_by)),
            shorten(w.query, 0 if full else 60),
        ]
        for w in report.waiting
    ]
    caption = ""
    if any(w.wait_source != "waitstart" for w in report.waiting):
        caption = "<= : time since the statement started (no pg_locks.waitstart), an upper bound of the wait"
    return Table("Waiting sessions", columns, rows, caption)


def summary_table(report: LocksReport) -> Table:
    columns = [
        Column("lock type"),
        Column("object"),
        Column("mode"),
        Column("held", "right"),
        Column("awaited", "right"),
        Column("sessions", "right"),
        Column("fast-path", "right"),
    ]
    rows: list[list[Cell]] = [
        [
            s.locktype,
            summary_object(s),
            s.mode,
            s.held,
            Styled(str(s.awaited), "bold red") if s.awaited else s.awaited,
            s.sessions,
            s.fastpath,
        ]
        for s in report.summary or []
    ]
    return Table("Lock table by type, object and mode", columns, rows)


def headline(report: LocksReport) -> Text:
    n = len(report.waiting)
    if not n:
        text = "No session waits on a lock."
        if report.hidden_waiters:
            text = f"No session waits on a lock for {report.min_wait_s:g}s or more."
        style = "green"
    else:
        text = (
            f"{n} session(s) wait on locks behind {len(report.roots)} root blocker(s)"
            + (f" and {len(report.deadlocks)} deadlocked group(s)" if report.deadlocks else "")
            + "."
        )
        style = "bold red" if report.roots or report.deadlocks else "yellow"
    if report.hidden_waiters:
        text += f" {report.hidden_waiters} shorter wait(s) hidden by --min-wait {report.min_wait_s:g}."
    if not report.details:
        text += " (--fast: pg_locks not read; lock type from wait_event, no mode or object.)"
    lines = [text]
    p = report.lock_table
    if p is not None:
        lines.append(
            f"Lock table: {p.entries} entries ({p.shared_entries} in the shared table, {p.fastpath_entries} "
            f"fast-path); shared table sized for {p.capacity} ({p.usage_pct:g}% used)"
        )
    return Text(lines, style=style)


def document(report: LocksReport, *, full: bool = False, show_all: bool = False) -> Document:
    width = 0 if full else 60
    sections: list[Section] = [headline(report)]
    if report.trees:
        sections.append(trees_section(report, width))
    if report.roots:
        sections.append(roots_table(report, full))
        sections.append(actions_text(report))
    primary = len(sections)
    sections.append(waiting_table(report, full))
    if show_all and report.summary is not None:
        sections.append(summary_table(report))
    sections += pooler_note(report.server)
    return Document(f"pgdoctor locks: PostgreSQL {report.server.version}", sections, report.findings, primary)


def waiter_json(w: Waiter) -> dict[str, Any]:
    return {
        "pid": w.pid,
        "application_name": w.application_name,
        "usename": w.usename,
        "datname": w.datname,
        "blocked_by": list(w.blocked_by),
        "wait_s": round_s(w.wait_s),
        "wait_source": w.wait_source,
        "locktype": w.locktype,
        "mode": w.mode,
        "object": w.object,
        "query": w.query,
    }


def root_json(r: Root) -> dict[str, Any]:
    return {
        "pid": r.pid,
        "kind": r.kind,
        "application_name": r.application_name,
        "usename": r.usename,
        "datname": r.datname,
        "backend_type": r.backend_type,
        "state": r.state,
        "state_age_s": round_s(r.state_age_s),
        "xact_age_s": round_s(r.xact_age_s),
        "blocks_direct": r.blocks_direct,
        "blocks_total": r.blocks_total,
        "query": r.query,
        "action": r.action,
    }


def tree_json(node: TreeNode) -> dict[str, Any]:
    return {
        "pid": node.pid,
        "also_blocked_by": list(node.also_blocked_by),
        "children": [tree_json(c) for c in node.children],
        "also_blocks": list(node.also_blocks),
        "cycle_to": list(node.cycle_to),
        "cycle": node.cycle,
    }


def to_json(report: LocksReport, *, show_all: bool = False) -> dict[str, Any]:
    p = report.lock_table
    return {
        "command": "locks",
        "server": server_json(report.server),
        "details": report.details,
        "min_wait_s": report.min_wait_s,
        "waiting": [waiter_json(w) for w in report.waiting],
        "roots": [root_json(r) for r in report.roots],
        "trees": [tree_json(t) for t in report.trees],
        "cycles": [list(g.pids) for g in report.deadlocks],
        "deadlocks": [
            {"pids": list(g.pids), "breaks_all": g.breaks_all, "breaks_all_checked": g.breaks_all_checked}
            for g in report.deadlocks
        ],
        "lock_table": None
        if p is None
        else {
            "entries": p.entries,
            "shared_entries": p.shared_entries,
            "fastpath_entries": p.fastpath_entries,
            "capacity": p.capacity,
            "usage_pct": p.usage_pct,
        },
        "summary": None
        if not show_all or report.summary is None
        else [
            {
                "locktype": s.locktype,
                "object": summary_object(s),
                "mode": s.mode,
                "held": s.held,
                "awaited": s.awaited,
                "sessions": s.sessions,
                "fastpath": s.fastpath,
            }
            for s in report.summary
        ],
        "findings": [f.to_json() for f in report.findings],
    }
