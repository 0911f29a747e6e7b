"""Small formatting helpers shared by every command's renderer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pgdoctor.render.document import Cell, Styled, Text

if TYPE_CHECKING:
    from pgdoctor.collect.server import ServerInfo

POOLER_NOTE = (
    "Through a pooler or proxy: the server sees pgdoctor's session coming from another process (its "
    "pid, or its client address and port, are not those of pgdoctor's own connection). The sessions "
    "PostgreSQL shows from the pooler's address are the pooler's server connections, not the "
    "applications behind it, and clients waiting in the pooler's queue hold no server connection, so "
    "they are not counted here. Look at the pooler itself (PgBouncer: SHOW POOLS and SHOW CLIENTS on "
    "its admin console, or `pgdoctor pgbouncer`), or connect to PostgreSQL's own port."
)


def server_json(server: ServerInfo) -> dict[str, Any]:
    """The `server` object of every command's JSON."""
    return {"version": server.version, "version_num": server.version_num, "via_pooler": server.via_pooler}


def pooler_note(server: ServerInfo | None) -> list[Text]:
    """A line saying what a pooler between pgdoctor and the server means for the figures (if one is)."""
    return [Text([POOLER_NOTE], style="yellow")] if server is not None and server.via_pooler else []


def shorten(text: str | None, width: int = 60) -> str:
    """One line of at most `width` characters ("…" marks the cut); width <= 0 keeps it whole."""
    if not text:
        return ""
    flat = " ".join(text.split())
    if width <= 0 or len(flat) <= width:
        return flat
    return flat[: width - 1] + "…"


def count(n: int, style: str) -> Cell:
    """A count that stands out when it is not zero."""
    return Styled(str(n), style) if n else Styled("0", "dim")


def round_s(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)
