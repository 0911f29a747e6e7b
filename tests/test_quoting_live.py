"""The names pgdoctor writes into the statements it prints (`pgdoctor.analyze.quoting`), checked by the
server: any text round-trips through `literal` whatever standard_conforming_strings is, any name through
`identifier`, and neither changes when a text format draws it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pgdoctor.analyze.quoting import identifier, literal
from pgdoctor.render.document import markdown_safe, safe
from tests.pgcluster import Cluster

pytestmark = pytest.mark.server

# Any text a server can hold: no NUL (PostgreSQL text cannot), no lone surrogate (not UTF-8).
CHARS = st.characters(codec="utf-8", exclude_characters="\x00")
TEXT = st.text(CHARS, max_size=40)
# Identifiers are cut at 63 bytes (NAMEDATALEN - 1): short ones, so the name the server reports is whole.
NAME = st.text(CHARS, min_size=1, max_size=15)
HOSTILE = [
    "it's",
    "\\",
    "'\\'",
    "a\\'b",
    "\x1b]0;x\x07",
    "line\nbreak",
    "\u202etxt",
    "ünï cødé ☃",
    '"',
    "'';--",
]
SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def conn(pg: Cluster) -> Iterator[psycopg.Connection[Any]]:
    with pg.connect() as c:
        yield c


def same_text(conn: psycopg.Connection[Any], text: str) -> None:
    sql = literal(text)
    assert safe(sql) == sql  # every text format prints it as it is
    for scs in ("on", "off"):
        conn.execute(f"SET standard_conforming_strings = {scs}")
        # psycopg reads % as a placeholder in a statement with parameters: doubled for it only
        row = conn.execute(f"SELECT {sql.replace('%', '%%')} = %s".encode(), [text]).fetchone()
        assert row is not None and row[0] is True, (scs, sql, row)
    conn.execute("RESET standard_conforming_strings")


def same_name(conn: psycopg.Connection[Any], name: str) -> None:
    sql = identifier(name)
    assert safe(sql) == sql
    for scs in ("on", "off"):
        conn.execute(f"SET standard_conforming_strings = {scs}")
        cur = conn.execute(f"SELECT 1 AS {sql}".encode())
        assert cur.description is not None and cur.description[0].name == name, (scs, sql)
    conn.execute("RESET standard_conforming_strings")


@given(text=TEXT)
@SETTINGS
@example(text="")
def test_any_text_round_trips_through_its_literal(conn: psycopg.Connection[Any], text: str) -> None:
    same_text(conn, text)


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_round_trips_through_its_literal(conn: psycopg.Connection[Any], text: str) -> None:
    same_text(conn, text)
    assert "\\" not in literal(text)  # nothing standard_conforming_strings could read differently


@given(name=NAME)
@SETTINGS
def test_any_name_round_trips_through_its_identifier(conn: psycopg.Connection[Any], name: str) -> None:
    if len(name.encode()) > 63:
        return  # the server truncates it: not a quoting question
    same_name(conn, name)


@pytest.mark.parametrize("name", [n for n in HOSTILE if n])
def test_hostile_names_round_trip_through_their_identifier(conn: psycopg.Connection[Any], name: str) -> None:
    same_name(conn, name)


def test_markdown_keeps_what_it_escapes_readable() -> None:
    """Markdown escapes its active characters with a backslash; a literal carries none of its own."""
    sql = literal("a|b[c]")
    assert markdown_safe(sql) == "'a\\|b\\[c\\]'"
