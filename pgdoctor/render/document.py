"""A small document model every command renders into, and its renderers for each --format.

Commands build a `Document` (tables, trees, text, findings); this module draws it with rich on a
terminal, with tabulate for plain and markdown, and as CSV for the document's primary table. JSON is
not drawn from the document: each command has its own documented JSON contract.
"""

from __future__ import annotations

import csv
import os
import re
import sys
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

from pgdoctor.analyze.findings import Finding
from pgdoctor.render.formats import Format
from pgdoctor.render.json_out import emit_json as emit_json  # noqa: PLC0414 (its home is json_out)

if TYPE_CHECKING:  # rich is imported only to draw a table
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text as RichText
    from rich.tree import Tree as RichTree


@dataclass(frozen=True)
class Styled:
    """A cell with a rich style; other formats use only its text."""

    text: str
    style: str


Cell = str | int | float | Styled | None


@dataclass
class Column:
    header: str
    align: str = "left"  # or "right"


@dataclass
class Table:
    title: str
    columns: list[Column]
    rows: list[list[Cell]]
    caption: str = ""


@dataclass
class Node:
    label: Cell
    children: list[Node] = field(default_factory=list)


@dataclass
class Trees:
    title: str
    roots: list[Node]


@dataclass
class Text:
    lines: list[str]
    style: str = ""


Section = Table | Trees | Text


@dataclass
class Document:
    title: str
    sections: list[Section]
    findings: list[Finding] = field(default_factory=list)
    primary: int = 0  # index in `sections` of the table CSV output prints
    show_findings: bool = True


TABULATE_MAX_ROWS = 500  # past this, plain tables use simple_table(): the same text, 10x faster
RICH_MAX_ROWS = 1000  # rich draws ~1 ms per row; past this a terminal table is neither fast nor readable
SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
MAX_PIDS_SHOWN = 12
SQL_PREFIX = "  sql: "  # a line of a finding's action, under the finding


# Characters that steer a terminal or hide what text says: C0 controls (ESC, BEL, CR, newline, tab …),
# DEL, C1 controls (0x80-0x9f: 0x9b is a one-byte CSI), bidirectional marks, embeddings, overrides and
# isolates, line and paragraph separators, and lone surrogates (undecodable bytes). Drawn escaped.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# What GitHub-flavoured markdown would read as a table border, link, image, HTML tag, code span or an
# escape: written with a backslash, so `![x](http://…)` in a query text stays text in a pasted ticket.
_MARKDOWN = re.compile(r"([\\|\[\]<>!`])")
# A markdown table cell is padded to the width of its column's widest cell, up to this: past it, cells
# are not padded (one long query must not make every row of its column as long: output ∝ data).
MARKDOWN_PAD_MAX = 60


def _escape_char(m: re.Match[str]) -> str:
    c = m.group()
    short = _SHORT_ESCAPES.get(c)
    if short:
        return short
    code = ord(c)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def safe(text: str) -> str:
    """`text` with every control character escaped (`\\x1b`, `\\n`, `\\u202e`): nothing from the server
    may move the cursor, retitle the terminal, forge a link or reorder what the reader sees.

    Every text format draws through this (cells, labels, titles, text and findings); JSON does not."""
    if text.isprintable():  # the common case, in C: no control, format or separator character
        return text
    return _UNSAFE.sub(_escape_char, text)


def _md(text: str) -> str:
    return _MARKDOWN.sub(r"\\\1", text)


def markdown_safe(text: str) -> str:
    """`safe(text)` with markdown's active characters escaped."""
    return _md(safe(text))


def text_of(cell: Cell) -> str:
    """A cell as drawn in any text format: control characters escaped (see `safe`)."""
    if cell is None:
        return ""
    if isinstance(cell, Styled):
        return safe(cell.text)
    if isinstance(cell, str):
        return safe(cell)
    if isinstance(cell, float):
        return f"{cell:g}"
    return str(cell)


def resolve_format(fmt: Format, stream: IO[str] | None = None) -> Format:
    """`auto` is rich tables on a terminal and plain text in a pipe."""
    if fmt is not Format.AUTO:
        return fmt
    stream = stream or sys.stdout
    return Format.TABLE if stream.isatty() else Format.PLAIN


def pid_list(pids: tuple[int, ...] | list[int]) -> str:
    shown = ", ".join(map(str, pids[:MAX_PIDS_SHOWN]))
    more = len(pids) - MAX_PIDS_SHOWN
    return shown + (f", … (+{more})" if more > 0 else "")


def finding_lines(f: Finding) -> list[str]:
    lines = [f"{f.severity.value.upper()} {f.code} [{f.subject}]: {f.message}"]
    if f.advice:
        lines.append(f"  -> {f.advice}")
    if f.pids:
        lines.append(f"  pids: {pid_list(f.pids)}")
    lines.extend(f"{SQL_PREFIX}{statement}" for statement in f.action.splitlines())
    return lines


def emit(doc: Document, fmt: Format, stream: IO[str] | None = None) -> None:
    """Draw `doc` in `fmt` (never JSON) on `stream` (stdout by default)."""
    out = stream or sys.stdout
    fmt = resolve_format(fmt, out)
    if fmt is Format.TABLE:
        _rich(doc, out)
    elif fmt is Format.CSV:
        _csv(doc, out)
    elif fmt in (Format.PLAIN, Format.MARKDOWN):
        out.write(_tabulated(doc, markdown=fmt is Format.MARKDOWN))
    else:
        raise ValueError(f"emit() cannot draw {fmt}")


def _csv(doc: Document, out: IO[str]) -> None:
    table = doc.sections[doc.primary]
    if not isinstance(table, Table):
        raise ValueError("the primary section of a document must be a table")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([safe(c.header) for c in table.columns])
    for row in table.rows:
        writer.writerow([text_of(c) for c in row])


def simple_table(rows: list[list[str]], headers: list[str], aligns: list[str]) -> str:
    """tabulate's "simple" layout, character for character (tests/test_render.py proves it), without its
    per-cell type inference, which costs about 10 µs a cell: 1 s for a 10,000-session table."""
    rows = [[c.strip() for c in row] for row in rows]
    widths = [len(h) + 2 for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: list[str]) -> str:
        padded = (
            c.rjust(w) if a == "right" else c.ljust(w) for c, w, a in zip(cells, widths, aligns, strict=True)
        )
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def markdown_table(rows: list[list[str]], headers: list[str], aligns: list[str]) -> str:
    """A GitHub-flavoured markdown table of cells already made `safe`: markdown's active characters are
    escaped here; cells are padded to their column's width only up to MARKDOWN_PAD_MAX, so the output
    grows with the data, not with the longest cell times the rows."""
    md = [[_md(c.strip()) for c in row] for row in rows]
    head = [_md(h) for h in headers]
    widths = [min(max(len(h), 3), MARKDOWN_PAD_MAX) for h in head]
    for row in md:
        for i, cell in enumerate(row):
            if len(cell) > widths[i]:
                widths[i] = min(len(cell), MARKDOWN_PAD_MAX)

    def line(cells: list[str]) -> str:
        padded = (
            c.rjust(w) if a == "right" else c.ljust(w) for c, w, a in zip(cells, widths, aligns, strict=True)
        )
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if a == "right" else (":" + "-" * (w + 1))
            for w, a in zip(widths, aligns, strict=True)
        )
        + "|"
    )
    return "\n".join([line(head), rule, *(line(r) for r in md)])


def _tree_lines(node: Node, depth: int, markdown: bool) -> list[str]:
    indent = "  " * depth
    label = text_of(node.label)
    lines = [f"{indent}- {_md(label) if markdown else label}"]
    for child in node.children:
        lines.extend(_tree_lines(child, depth + 1, markdown))
    return lines


def _tabulated_table(section: Table, *, markdown: bool) -> str:
    """One table's text: markdown, tabulate's `simple`, or its fast equivalent for long tables."""
    if not section.rows:
        return "(none)"
    cells = [[text_of(c) for c in row] for row in section.rows]
    headers = [safe(c.header) for c in section.columns]
    aligns = [c.align for c in section.columns]
    if markdown:
        return markdown_table(cells, headers, aligns)
    if len(cells) > TABULATE_MAX_ROWS:
        return simple_table(cells, headers, aligns)
    from tabulate import tabulate  # only here: markdown and long tables do without it

    return str(tabulate(cells, headers=headers, tablefmt="simple", colalign=aligns, disable_numparse=True))


def _tabulated_section(section: Section, *, markdown: bool) -> list[str]:
    """One section's parts (title, body, caption) as text, plain or markdown."""
    own = markdown_safe if markdown else safe  # text that may carry names from the server
    heading = "## " if markdown else ""
    if isinstance(section, Text):
        return ["\n".join(own(line) for line in section.lines)]
    parts = [f"{heading}{own(section.title)}"] if section.title else []
    if isinstance(section, Table):
        parts.append(_tabulated_table(section, markdown=markdown))
        if section.caption:
            parts.append(own(section.caption))
    else:
        lines = [line for root in section.roots for line in _tree_lines(root, 0, markdown)]
        parts.append("\n".join(lines) if lines else "(none)")
    return parts


def _tabulated_findings(findings: list[Finding], *, markdown: bool) -> str:
    if not findings:
        return "no findings"
    if markdown:
        return "\n".join(f"- {chr(10).join(map(markdown_safe, finding_lines(f)))}" for f in findings)
    return "\n".join(safe(line) for f in findings for line in finding_lines(f))


def _tabulated(doc: Document, *, markdown: bool) -> str:
    parts: list[str] = []
    if doc.title:
        parts.append(f"# {markdown_safe(doc.title)}" if markdown else safe(doc.title))
    for section in doc.sections:
        parts.extend(_tabulated_section(section, markdown=markdown))
    if doc.show_findings:
        parts.append(f"{'## ' if markdown else ''}Findings")
        parts.append(_tabulated_findings(doc.findings, markdown=markdown))
    return "\n\n".join(parts) + "\n"


# RichText is never parsed for markup ([bold] in a query stays text); `safe` escapes control characters


def _rich_cell(cell: Cell) -> RichText:
    from rich.text import Text as RichText

    if isinstance(cell, Styled):
        return RichText(safe(cell.text), style=cell.style)
    return RichText(text_of(cell))


def _rich_line(text: str, style: str = "") -> RichText:
    from rich.text import Text as RichText

    return RichText(safe(text), style=style)


def _rich_table(section: Table) -> RichTable:
    from rich import box
    from rich.table import Table as RichTable

    table = RichTable(
        title=_rich_line(section.title) if section.title else None,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        caption=_rich_line(section.caption) if section.caption else None,
        caption_justify="left",
    )
    for i, col in enumerate(section.columns):
        # the first column names the row: never truncate it, squeeze the figures instead
        widest = max((len(text_of(r[i])) for r in section.rows[:RICH_MAX_ROWS]), default=0)
        table.add_column(
            _rich_line(col.header),
            justify="right" if col.align == "right" else "left",
            no_wrap=i == 0,
            min_width=min(widest, 40) if i == 0 else None,
        )
    for row in section.rows[:RICH_MAX_ROWS]:
        table.add_row(*(_rich_cell(c) for c in row))
    return table


def _rich_tree(root: Node) -> RichTree:
    from rich.tree import Tree as RichTree

    def add(tree: RichTree, node: Node) -> None:
        branch = tree.add(_rich_cell(node.label))
        for child in node.children:
            add(branch, child)

    tree = RichTree(_rich_cell(root.label))
    for child in root.children:
        add(tree, child)
    return tree


def _rich_section(console: Console, section: Section) -> None:
    from rich.text import Text as RichText

    if isinstance(section, Table):
        console.print(_rich_table(section))
        hidden = len(section.rows) - RICH_MAX_ROWS
        if hidden > 0:
            console.print(
                RichText(f"… {hidden} more rows not drawn; --format plain, csv or json lists them all")
            )
    elif isinstance(section, Trees):
        if section.title:
            console.print(_rich_line(section.title, "bold"))
        if not section.roots:
            console.print("(none)")
        for root in section.roots:
            console.print(_rich_tree(root))
    else:
        console.print(RichText("\n".join(map(safe, section.lines)), style=section.style))


def _rich(doc: Document, out: IO[str]) -> None:
    from rich.console import Console
    from rich.text import Text as RichText

    console = Console(file=out, highlight=False, soft_wrap=False, no_color="NO_COLOR" in os.environ)
    if doc.title:
        console.print(_rich_line(doc.title, "bold"))
    for section in doc.sections:
        _rich_section(console, section)
    if doc.show_findings:
        console.print(RichText("Findings", style="bold"))
        if not doc.findings:
            console.print(RichText("no findings", style="green"))
        for f in doc.findings:
            head, *rest = finding_lines(f)
            console.print(_rich_line(head, SEVERITY_STYLE[f.severity.value]))
            for text in rest:
                # a statement is never folded: the terminal wraps it, and a copy of it runs unchanged
                console.print(_rich_line(text), soft_wrap=text.startswith(SQL_PREFIX))
