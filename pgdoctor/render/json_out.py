"""JSON output: every command's JSON contract written to the output stream, a long list a batch at a time.

JSON is not drawn from a `Document` (each command has its own documented contract): a command hands
`emit_json` its payload, plain dicts and lists, where a long list may be a `JsonRows`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any


@dataclass(frozen=True)
class JsonRows:
    """A long list in a JSON payload (a report's sessions), each item turned into its JSON value by
    `to_json` only as it is written, a batch at a time: 100,000 sessions never exist as 100,000 dicts
    and one 35 MB string at once. `plain_json` gives the list itself (the JSON contract, for tests)."""

    items: Sequence[Any]
    to_json: Callable[[Any], Any]


JSON_BATCH = 2000  # items of a JsonRows turned into JSON at a time
JSON_MSGSPEC_MIN = 5000  # a JsonRows this long is encoded by msgspec (in C, 4x faster than json.dumps)


def plain_json(payload: Any) -> Any:
    """`payload` with every JsonRows (at the top level of a dict) turned into its list."""
    if isinstance(payload, dict) and any(isinstance(v, JsonRows) for v in payload.values()):
        return {
            k: [v.to_json(i) for i in v.items] if isinstance(v, JsonRows) else v for k, v in payload.items()
        }
    return payload


def emit_json(payload: Any, stream: IO[str] | None = None) -> None:
    """Indented for a person at a terminal, one line for a pipe (the C encoder: 5x faster), with the
    standard library's separators (`, ` and `: `) either way."""
    out = stream or sys.stdout
    if out.isatty():
        out.write(json.dumps(plain_json(payload), indent=2, ensure_ascii=False) + "\n")
        return
    if not (isinstance(payload, dict) and any(isinstance(v, JsonRows) for v in payload.values())):
        out.write(json.dumps(payload, ensure_ascii=False) + "\n")
        return
    out.write("{")
    for n, (key, value) in enumerate(payload.items()):
        out.write(f"{', ' if n else ''}{json.dumps(key, ensure_ascii=False)}: ")
        if isinstance(value, JsonRows):
            _write_rows(value, out)
        else:
            out.write(json.dumps(value, ensure_ascii=False))
    out.write("}\n")


def _write_rows(rows: JsonRows, out: IO[str]) -> None:
    """A JsonRows as a JSON list, JSON_BATCH items at a time: the same text json.dumps writes (msgspec's
    own floats aside: 1e16 for 1e+16, both JSON for the same number)."""
    msgspec = len(rows.items) >= JSON_MSGSPEC_MIN
    binary = msgspec and _takes_utf8_bytes(out)  # msgspec's bytes as they are: no decoding, no re-encoding
    out.write("[")
    for start in range(0, len(rows.items), JSON_BATCH):
        batch = [rows.to_json(item) for item in rows.items[start : start + JSON_BATCH]]
        encoded = _msgspec_batch(batch) if msgspec else None
        if encoded is not None and binary:
            out.write((b"" if start == 0 else b", ") + encoded[1:-1])  # type: ignore[arg-type]
            continue
        text = encoded.decode() if encoded is not None else json.dumps(batch, ensure_ascii=False)
        out.write(("" if start == 0 else ", ") + text[1:-1])
    out.write("]")


def _takes_utf8_bytes(out: IO[str]) -> bool:
    """Whether `out` takes UTF-8 bytes as well as text (pgdoctor's stdout does: `cli._Stdout`)."""
    import codecs

    try:
        if codecs.lookup(getattr(out, "encoding", None) or "ascii").name != "utf-8":
            return False
        out.write(b"")  # type: ignore[arg-type]
    except (TypeError, LookupError):
        return False
    return True


def _msgspec_batch(batch: list[Any]) -> bytes | None:
    """msgspec's JSON of a batch (UTF-8), laid out as json.dumps lays it out; None for what only the
    standard library writes (a lone surrogate: msgspec encodes UTF-8 strictly)."""
    import msgspec

    try:
        return msgspec.json.format(msgspec.json.encode(batch), indent=0)
    except (UnicodeEncodeError, msgspec.EncodeError, OverflowError, TypeError):
        return None
