"""The document renderers, without a server."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st
from tabulate import tabulate

from pgdoctor.render.document import TABULATE_MAX_ROWS, Cell, Column, Document, Table, emit, simple_table
from pgdoctor.render.formats import Format

printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=14)


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[str], list[list[str]]]:
    ncols = draw(st.integers(1, 6))
    headers = draw(st.lists(printable.filter(lambda h: h.strip() == h and h), min_size=ncols, max_size=ncols))
    aligns = draw(st.lists(st.sampled_from(["left", "right"]), min_size=ncols, max_size=ncols))
    rows = draw(st.lists(st.lists(printable, min_size=ncols, max_size=ncols), min_size=1, max_size=8))
    return headers, aligns, rows


@settings(max_examples=500, deadline=None)
@given(tables())
def test_simple_table_is_tabulates_simple_layout(table: tuple[list[str], list[str], list[list[str]]]) -> None:
    headers, aligns, rows = table
    expected = tabulate(rows, headers=headers, tablefmt="simple", colalign=aligns, disable_numparse=True)
    assert simple_table(rows, headers, aligns) == expected


def test_large_plain_tables_take_the_fast_path_with_the_same_text() -> None:
    rows: list[list[Cell]] = [[f"app_{i % 7}", i, "x" * (i % 13)] for i in range(TABULATE_MAX_ROWS + 5)]
    columns = [Column("application"), Column("n", "right"), Column("q")]
    out = io.StringIO()
    emit(Document("", [Table("t", columns, rows)], show_findings=False), Format.PLAIN, out)
    text = [[str(c) for c in r] for r in rows]
    expected = tabulate(text, headers=["application", "n", "q"], tablefmt="simple",
                        colalign=["left", "right", "left"], disable_numparse=True)  # fmt: skip
    assert out.getvalue() == f"t\n\n{expected}\n"
