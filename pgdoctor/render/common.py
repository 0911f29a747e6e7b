"""Small formatting helpers shared by every command's renderer."""

from __future__ import annotations

from pgdoctor.render.document import Cell, Styled


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
