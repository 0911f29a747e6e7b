"""Passwords in query texts, masked where rows are collected: no output and no snapshot carries them.

Other roles' statements reach pgdoctor through pg_stat_activity (a session's current or last statement)
and pg_stat_statements (which keeps utility statements verbatim before PostgreSQL 16). Masked:
- `PASSWORD '…'` in CREATE/ALTER ROLE/USER (also `ENCRYPTED PASSWORD`), in any SQL string form: '…' with
  doubled quotes, E'…' with backslash escapes, $$…$$ and $tag$…$tag$, U&'…', and ''…'' inside a string
  that is itself a statement (EXECUTE 'ALTER ROLE … PASSWORD ''…''');
- `password '…'` in OPTIONS of CREATE/ALTER SERVER and USER MAPPING (`"password"` quoted too), and
  `sslpassword`;
- `password=…` in connection strings (dblink, postgres_fdw), quoted or not, inside any of those strings;
- the password of a URI (`postgresql://user:secret@host`, any scheme).
A truncated text (track_activity_query_size) is masked to its end. When in doubt more is masked, never
less: the property test in tests/test_secrets.py generates statements with passwords of every shape.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TypeVar

MASK = "****"

# Cheap test first: most statements mention neither.
_HINT = re.compile(r"password|://", re.IGNORECASE)

_KEY = r"""(?<![\w$"])(?:"?(?:ssl)?password"?)(?![\w$])"""
# What may stand between PASSWORD and its string: blanks and comments
_GAP = r"""(?:\s|/\*.*?\*/|--[^\n]*(?:\n|\Z))*"""
_STRING = r"""
    (?P<q2>''(?:''''|\\''|\\.|[^'\\]|[\\']+\Z)*(?:''|\Z))          # ''…'' inside a quoted statement
  | (?P<q3>\\'(?:\\\\\\\\|\\\\\\'|\\[^'\\]|''|[^\\']|[\\']+\Z)*(?:\\'|\Z))  # \'…\' inside an E'…' string
  | (?P<dollar>\$(?P<tag>[^\W\d]\w*)?\$.*?(?:\$(?P=tag)\$|\Z))  # $$…$$, $tag$…$tag$
  | (?P<q1>(?:[eE]|[uU]&)?'(?:''|\\.|[^'\\]|\\+\Z)*(?:'|\Z))   # '…', E'…', U&'…' (backslash-escape aware)
"""
_SQL_FORM = re.compile(_KEY + _GAP + r"(?P<value>" + _STRING + r")", re.IGNORECASE | re.DOTALL | re.VERBOSE)
# password=… in a connection string: quoted ('…' or ''…'' inside a SQL string) or up to a blank or quote
_CONNINFO_FORM = re.compile(
    _KEY + r"\s*=\s*(?P<value>" + _STRING + r"|(?P<bare>(?:\\.|''|[^\s'\\]|\\+\Z)+))",
    re.IGNORECASE | re.DOTALL | re.VERBOSE,
)
_URI = re.compile(r"([a-z][a-z0-9+.\-]*://[^:/@\s'\"?#]*:)([^@\s'\"]*)(@|\Z)", re.IGNORECASE)  # \Z: cut


def _masked(m: re.Match[str]) -> str:
    value = m.group("value")
    whole = m.group(0)
    head = whole[: len(whole) - len(value)]
    if m.group("q2"):
        closed = len(value) >= 4 and value.endswith("''")
        return f"{head}''{MASK}''" if closed else f"{head}''{MASK}"
    if m.group("q3"):
        closed = len(value) >= 4 and value.endswith("\\'")
        return f"{head}\\'{MASK}" + ("\\'" if closed else "")
    if m.group("dollar"):
        tag = m.group("tag") or ""
        delimiter = f"${tag}$"
        closed = len(value) >= 2 * len(delimiter) and value.endswith(delimiter)
        return f"{head}{delimiter}{MASK}{delimiter if closed else ''}"
    if m.group("q1"):
        opening = value[: value.index("'") + 1]
        closed = len(value) > len(opening) and value.endswith("'") and not value.endswith("\\'")
        return f"{head}{opening}{MASK}{chr(39) if closed else ''}"
    return f"{head}{MASK}"


def mask_secrets(text: str | None) -> str | None:
    """`text` with every password it holds replaced by ****."""
    if not text or not _HINT.search(text):
        return text
    text = _CONNINFO_FORM.sub(_masked, text)
    text = _SQL_FORM.sub(_masked, text)
    return _URI.sub(rf"\1{MASK}\3", text)


R = TypeVar("R")


def mask_rows(rows: list[R], field: str = "query") -> list[R]:
    """Rows with the text in `field` masked (a row is copied only when its text changes)."""
    out: list[R] = []
    for row in rows:
        text = getattr(row, field)
        masked = mask_secrets(text)
        out.append(row if masked == text else dataclasses.replace(row, **{field: masked}))  # type: ignore[type-var]
    return out
