"""Recordings (`pgdoctor record`, `pgdoctor timeline`): JSON Lines, one header, then one line per tick.

    {"format": "pgdoctor-recording", "kind": "header", "version": 1, "pgdoctor": "0.1.0", …}
    {"kind": "tick", "t": 1765015500.123, "used": 185, "usable": 197, "apps": {…}, "findings": […], …}
    {"kind": "resume", "version": 1, …}     a later run appending to the same file (the header's fields)
    {"kind": "tick", …}

Each line is written whole with one write() and flushed, so a recorder stopped at any moment leaves
complete lines, except at worst a partial last one, which the reader skips with a note (a later run
appending to the file first ends that line, so it is skipped the same way, in the middle). The size is
bounded: a line that would take the file past `max_size` is not written, and the recorder stops.

Versions: `VERSION` changes when a line's layout does; the reader reads every earlier version (each line
decoded by the version of the header or resume line above it). A field added to a tick has a default, so
older lines read as that default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

from pgdoctor.analyze.record import Header, Recording, Tick
from pgdoctor.errors import ExitCode, PgDoctorError

FORMAT = "pgdoctor-recording"
# 1: pgdoctor 0.1: header, tick and resume lines.
VERSION = 1

_decoder = msgspec.json.Decoder(dict[str, Any])
_encoder = msgspec.json.Encoder()


def _compact(doc: dict[str, Any]) -> dict[str, Any]:
    """A tick without its empty fields (they read back as their defaults); `pools` stays, even empty:
    it tells a recording with PgBouncer (None: without)."""
    return {k: v for k, v in doc.items() if v is not None and (k == "pools" or v not in ({}, []))}


def header_line(header: Header, kind: str = "header") -> bytes:
    doc: dict[str, Any] = {"format": FORMAT, "kind": kind, **msgspec.to_builtins(header)}
    return _encoder.encode(doc) + b"\n"


def tick_line(tick: Tick) -> bytes:
    return _encoder.encode({"kind": "tick", **_compact(msgspec.to_builtins(tick))}) + b"\n"


def _header(doc: dict[str, Any], where: str) -> Header:
    version = doc.get("version")
    if not isinstance(version, int) or version < 1:
        raise PgDoctorError(f"{where}: no recording format version", ExitCode.USAGE)
    if version > VERSION:
        raise PgDoctorError(
            f"{where}: recording format {version} was written by a newer pgdoctor (this one reads up to "
            f"{VERSION}): upgrade pgdoctor",
            ExitCode.USAGE,
        )
    try:
        return msgspec.convert(doc, Header)
    except msgspec.ValidationError as exc:
        raise PgDoctorError(f"{where}: invalid header: {exc}", ExitCode.USAGE) from None


# How each format version's tick line becomes today's Tick (version 1 is today's layout).
def _tick_v1(doc: dict[str, Any]) -> Tick:
    return msgspec.convert(doc, Tick)


TICK_READERS = {1: _tick_v1}


def read_header(path: Path) -> Header:
    """The header of an existing recording (the first line), or a one-line error."""
    try:
        with path.open("rb") as f:
            first = f.readline()
    except OSError as exc:
        raise PgDoctorError(f"cannot read {path}: {exc.strerror}", ExitCode.USAGE) from None
    return _first(first, path)


def _first(line: bytes, path: Path) -> Header:
    try:
        doc = _decoder.decode(line)
    except msgspec.DecodeError:
        doc = {}
    if doc.get("format") != FORMAT or doc.get("kind") != "header":
        raise PgDoctorError(f"{path} is not a pgdoctor recording (no header line)", ExitCode.USAGE)
    return _header(doc, str(path))


def read_recording(path: Path) -> Recording:
    """Every tick of a recording, in order; lines that are not whole (a stop mid-write) skipped, noted."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PgDoctorError(f"cannot read {path}: {exc.strerror}", ExitCode.USAGE) from None
    lines = data.split(b"\n")
    header = _first(lines[0], path)
    complete_end = data.endswith(b"\n")
    if complete_end:
        lines.pop()  # the empty string after the last newline
    version = header.version
    resumed: list[Header] = []
    ticks: list[Tick] = []
    notes: list[str] = []
    last = len(lines)
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            doc = _decoder.decode(line)
            kind = doc.get("kind")
            if kind == "tick":
                ticks.append(TICK_READERS[version](doc))
            elif kind == "resume":
                later = _header(doc, f"{path}:{number}")
                resumed.append(later)
                version = later.version
            # another kind: from a later format version this reader does not know: ignored
        except (msgspec.DecodeError, msgspec.ValidationError):
            if number == last and not complete_end:
                notes.append(
                    f"line {number}, the last, is incomplete (the recorder was stopped mid-write): skipped"
                )
            else:
                notes.append(f"line {number} is not a complete record (cut by a stop mid-write): skipped")
    return Recording(header=header, resumed=resumed, ticks=ticks, notes=notes)


class Writer:
    """Appends lines to a recording: each whole with one write, never past `max_size` bytes."""

    def __init__(self, path: Path, header: Header, max_size: int) -> None:
        self.path = path
        self.max_size = max_size
        existing = path.exists() and path.stat().st_size > 0
        if existing:
            before = read_header(path)
            if not before.server.same_as(header.server):
                raise PgDoctorError(
                    f"{path} is a recording of another server ({_describe(before)}), not of this one "
                    f"({_describe(header)}): give another -o file",
                    ExitCode.USAGE,
                )
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise PgDoctorError(f"cannot write {path}: {exc.strerror}", ExitCode.USAGE) from None
        self.size = os.fstat(self.fd).st_size
        self.resumed = existing
        first = header_line(header, "resume" if existing else "header")
        if existing and not _ends_with_newline(path):
            first = b"\n" + first  # end a line a stopped recorder left partial: read as skipped
        if not self.write(first):
            os.close(self.fd)
            raise PgDoctorError(
                f"{path} is at --max-size already ({self.size:,} bytes): give another -o file", ExitCode.USAGE
            )

    def write(self, line: bytes) -> bool:
        """Append one line; False (nothing written) when it would take the file past max_size."""
        if self.size + len(line) > self.max_size:
            return False
        view = memoryview(line)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        self.size += len(line)
        return True

    def close(self) -> None:
        os.close(self.fd)


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _describe(header: Header) -> str:
    s = header.server
    ident = f"system identifier {s.system_identifier}, " if s.system_identifier else ""
    return f"{ident}{s.address}, PostgreSQL {s.version}"
