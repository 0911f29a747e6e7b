"""The curated SQL in `queries/`, picked per server or extension version by file name.

Layout: `queries/<name>/<min-version>.sql`, for example `queries/activity/13.sql` (server 13+) or
`queries/statements/1.11.sql` (pg_stat_statements 1.11+). For a given version the file with the highest
minimum version that is not above it is used.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from pgdoctor.errors import ExitCode, PgDoctorError

Version = tuple[int, ...]


def queries_dir() -> Path:
    """`pgdoctor/queries` inside an installed wheel, else the source tree's top-level `queries/`."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "queries", here.parent / "queries"):
        if candidate.is_dir():
            return candidate
    raise PgDoctorError("pgdoctor is installed without its queries/ folder", ExitCode.UNAVAILABLE)


def parse_version(text: str) -> Version:
    """'15' -> (15,), '1.11' -> (1, 11), '15.4' -> (15, 4)."""
    return tuple(int(part) for part in text.split("."))


def server_version(version_num: int) -> Version:
    """server_version_num 150018 -> (15, 18); 90624 -> (9, 6, 24)."""
    if version_num >= 100000:
        return (version_num // 10000, version_num % 10000)
    return (version_num // 10000, version_num // 100 % 100, version_num % 100)


@cache
def variants(name: str) -> dict[Version, Path]:
    """Every file of one query, keyed by its minimum version."""
    folder = queries_dir() / name
    if not folder.is_dir():
        raise PgDoctorError(f"internal: no query named {name!r} in {queries_dir()}", ExitCode.UNAVAILABLE)
    return {parse_version(p.stem): p for p in folder.glob("*.sql")}


def pick(name: str, version: Version) -> Path:
    """The file of `name` with the highest minimum version <= `version`."""
    fitting = [v for v in variants(name) if v <= version]
    if not fitting:
        lowest = ".".join(map(str, min(variants(name))))
        shown = ".".join(map(str, version))
        raise PgDoctorError(
            f"{name}: version {shown} is not supported (needs {lowest} or later)", ExitCode.UNAVAILABLE
        )
    return variants(name)[max(fitting)]


@cache
def _read(path: Path) -> str:
    return strip_comments(path.read_text(encoding="utf-8"))


# A string literal, a quoted identifier, a comment, or anything else up to the next of them.
_TOKENS = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|[^'"/-]+|.""", re.DOTALL)
KEPT_COMMENT = "/* pgdoctor */"  # the marker that tells pgdoctor's own statements apart (pgdoctor.db)


def strip_comments(sql: str) -> str:
    """The statement without its comments (but the pgdoctor marker) and blank lines: what the server
    gets, so other tools' views of pg_stat_statements and the server log show no comment blocks."""
    kept = []
    for token in _TOKENS.findall(sql):
        if token.startswith("--") or (token.startswith("/*") and token != KEPT_COMMENT):
            continue
        kept.append(token)
    lines = (line.rstrip() for line in "".join(kept).splitlines())
    return "\n".join(line for line in lines if line)


def load(name: str, version: Version) -> str:
    """The SQL text of `name` for `version`."""
    return _read(pick(name, version))


# The server versions pgdoctor supports; collectors declare which query names they use for them.
SERVER_VERSIONS: tuple[Version, ...] = ((13, 0), (14, 0), (15, 0), (16, 0), (17, 0), (18, 0))
