"""`--watch`: a tick drawn as one summary line (plain, for logs), one JSON document (JSON Lines), or the live
screen's picture (rich): what changed since the previous tick and the first, above the command's report."""

from __future__ import annotations

import datetime
from typing import Any

from pgdoctor.analyze.format import duration
from pgdoctor.analyze.watch import Change, Delta, Member, Picture
from pgdoctor.render.document import (
    SEVERITY_STYLE,
    Column,
    Document,
    Styled,
    Table,
    Trees,
    _rich_line,
    _rich_table,
    _rich_tree,
    finding_lines,
    safe,
)

# A summary line names at most this many keys (applications, blockers, pools) that moved; the rest are
# counted ("… +3 more"), so a line stays a line whatever the number of applications.
LINE_MAX_KEYS = 8
# What a count is called in the summary line and on the screen, per Picture.counts_of
_COUNTS_TITLE = {"root blocker": "sessions held up per root blocker", "pool": "clients waiting per pool"}


def timestamp(at: float) -> str:
    """UTC, to the second, as logs write it: 2026-12-06T20:01:02Z."""
    moment = datetime.datetime.fromtimestamp(at, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def signed(n: int) -> str:
    return f"{n:+d}"


def _moved(c: Change) -> str:
    return f"{safe(c.key)}={c.now} ({signed(c.since_last)}, {signed(c.since_start)} since start)"


def _headline(picture: Picture, delta: Delta) -> list[str]:
    totals = {c.key: c for c in delta.totals}
    if picture.command == "connections":
        used = totals["used"]
        return [
            f"used/usable {used.now}/{totals['usable'].now} "
            f"({signed(used.since_last)}, {signed(used.since_start)} since start)"
        ]
    return [_moved(c) for c in delta.totals]


def _members(what: str, members: list[Member]) -> list[str]:
    return [f"{what}: " + ", ".join(safe(m.label) for m in members)] if members else []


def summary_line(picture: Picture, delta: Delta) -> str:
    """One line per tick, for logs: time, the headline figures, the keys that moved, blockers that
    appeared or ended, the findings (codes) and those raised or cleared since the previous tick."""
    parts = [
        f"{timestamp(delta.at)} {picture.command} tick {delta.tick}",
        " ".join(_headline(picture, delta)),
    ]
    moved = [c for c in delta.counts if c.since_last or c.since_start]
    if moved:
        shown = " ".join(_moved(c) for c in moved[:LINE_MAX_KEYS])
        more = len(moved) - LINE_MAX_KEYS
        parts.append(f"{picture.counts_of}: {shown}" + (f" … +{more} more" if more > 0 else ""))
    parts += _members("new", delta.appeared) + _members("ended", delta.ended)
    codes = sorted({key.split(" ", 1)[0] for key in picture.findings})
    findings = "findings: " + (",".join(codes) if codes else "none")
    if delta.findings_raised:
        findings += " raised: " + ", ".join(safe(k) for k in delta.findings_raised)
    if delta.findings_cleared:
        findings += " cleared: " + ", ".join(safe(k) for k in delta.findings_cleared)
    parts.append(findings)
    return " | ".join(parts)


def _change_json(c: Change) -> dict[str, Any]:
    return {"key": c.key, "now": c.now, "since_last": c.since_last, "since_start": c.since_start}


def _members_json(members: list[Member]) -> list[dict[str, str]]:
    return [{"key": m.key, "label": m.label} for m in members]


def watch_json(picture: Picture, delta: Delta, interval_s: float) -> dict[str, Any]:
    """The `watch` object added to the command's JSON on each line of `--watch --format json`."""
    return {
        "tick": delta.tick,
        "at": timestamp(delta.at),
        "epoch": round(delta.at, 3),
        "elapsed_s": round(delta.elapsed_s, 3),
        "interval_s": interval_s,
        "totals": {c.key: _change_json(c) for c in delta.totals},
        "counts_of": picture.counts_of,
        "counts": [_change_json(c) for c in delta.counts],
        "appeared": _members_json(delta.appeared),
        "ended": _members_json(delta.ended),
        "appeared_since_start": _members_json(delta.appeared_since_start),
        "ended_since_start": _members_json(delta.ended_since_start),
        "findings_raised": delta.findings_raised,
        "findings_cleared": delta.findings_cleared,
    }


def _signed_cell(n: int) -> Styled:
    style = "dim" if n == 0 else ("bold red" if n > 0 else "bold green")
    return Styled(signed(n), style)


def changes_table(picture: Picture, delta: Delta) -> Table:
    """The screen's first table: the headline figures, then each key, now and how it moved."""
    rows: list[list[Any]] = [
        [Styled(c.key, "bold"), c.now, _signed_cell(c.since_last), _signed_cell(c.since_start)]
        for c in delta.totals
    ]
    rows += [[c.key, c.now, _signed_cell(c.since_last), _signed_cell(c.since_start)] for c in delta.counts]
    return Table(
        title=f"Changes ({_COUNTS_TITLE.get(picture.counts_of, 'sessions per ' + picture.counts_of)})",
        columns=[
            Column(picture.counts_of),
            Column("now", "right"),
            Column("since last tick", "right"),
            Column("since start", "right"),
        ],
        rows=rows,
    )


def _member_lines(delta: Delta) -> list[tuple[str, str]]:
    lines = [("new since last tick: ", m.label) for m in delta.appeared]
    lines += [("ended since last tick: ", m.label) for m in delta.ended]
    lines += [("finding raised: ", k) for k in delta.findings_raised]
    lines += [("finding cleared: ", k) for k in delta.findings_cleared]
    return lines


def screen(doc: Document, picture: Picture, delta: Delta, interval_s: float) -> Any:
    """The live screen: a header, what changed, the findings, then the command's report as it draws it
    on a terminal."""
    from rich.console import Group
    from rich.text import Text as RichText

    clock = datetime.datetime.fromtimestamp(delta.at).strftime("%H:%M:%S")
    head = (
        f"pgdoctor {picture.command} --watch {interval_s:g}s · tick {delta.tick} at {clock} · "
        f"{duration(delta.elapsed_s)} since start · Ctrl-C to stop"
    )
    parts: list[Any] = [_rich_line(head, "bold reverse"), _rich_table(changes_table(picture, delta))]
    for what, text in _member_lines(delta):
        parts.append(_rich_line(what + text, "bold"))
    # the findings before the report's tables: what does not fit the terminal is cut at the bottom
    if doc.show_findings:
        parts.append(_rich_line("Findings", "bold"))
        if not doc.findings:
            parts.append(_rich_line("no findings", "green"))
        for f in doc.findings:
            head_line, *rest = finding_lines(f)
            parts.append(_rich_line(head_line, SEVERITY_STYLE[f.severity.value]))
            parts += [_rich_line(text) for text in rest]
    if doc.title:
        parts.append(_rich_line(doc.title, "bold"))
    for section in doc.sections:
        if isinstance(section, Table):
            parts.append(_rich_table(section))
        elif isinstance(section, Trees):
            if section.title:
                parts.append(_rich_line(section.title, "bold"))
            parts += [_rich_tree(root) for root in section.roots] or [_rich_line("(none)")]
        else:
            parts.append(RichText("\n".join(map(safe, section.lines)), style=section.style))
    return Group(*parts)
