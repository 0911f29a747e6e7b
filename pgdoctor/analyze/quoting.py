"""Names from the server (applications, roles, databases) written into SQL that pgdoctor prints: as
literals that mean the same text whatever `standard_conforming_strings` is (no backslash ever appears
inside quotes), and that every text format prints unchanged (characters a terminal could act on, and
backslashes, are spelled `chr(n)` or as Unicode escapes, so `pgdoctor.render.document.safe` has nothing
to escape)."""

from __future__ import annotations

import re

# What a literal spells as chr(n): controls, DEL, C1, bidirectional marks and separators (what the text
# formats would show escaped, pgdoctor.render.document.safe), and the backslash (an escape character in
# a string literal when standard_conforming_strings is off).
_SPELLED = re.compile("[\\\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def _spelled(c: str) -> bool:
    return not c.isprintable() or bool(_SPELLED.match(c))


def literal(text: str) -> str:
    """`text` as an SQL string literal: quotes doubled, and each character a terminal could act on (or
    a backslash) as `chr(n)`, joined with `||`. The same text whether standard_conforming_strings is on
    or off, and no text format changes it.

    >>> literal("web"), literal("it's"), literal(""), literal("a\\\\b")
    ("'web'", "'it''s'", "''", "('a' || chr(92) || 'b')")
    """
    parts: list[str] = []
    run: list[str] = []
    for c in text:
        if _spelled(c):
            if run:
                parts.append("'" + "".join(run).replace("'", "''") + "'")
                run = []
            parts.append(f"chr({ord(c)})")
        else:
            run.append(c)
    if run or not parts:
        parts.append("'" + "".join(run).replace("'", "''") + "'")
    return parts[0] if len(parts) == 1 else "(" + " || ".join(parts) + ")"


def identifier(name: str) -> str:
    """`name` as a quoted SQL identifier (a role, a database); characters a terminal could act on (and
    backslashes) as Unicode escapes of a `U&"…"` identifier, which standard_conforming_strings does not
    affect.

    >>> identifier("app"), identifier('we"ird'), identifier("a\\nb")
    ('"app"', '"we""ird"', 'U&"a\\\\000ab"')
    """
    quoted = name.replace('"', '""')
    if not any(_spelled(c) for c in name):
        return f'"{quoted}"'
    escaped = "".join(
        (f"\\{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\+{ord(c):06x}") if _spelled(c) else c for c in quoted
    )
    return f'U&"{escaped}"'
