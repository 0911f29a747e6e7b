"""Where `pgdoctor snapshot -o` writes: checked and opened before anything is collected, written whole."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import tempfile
import typing
from pathlib import Path
from typing import Any

from pgdoctor.errors import ExitCode, PgDoctorError


class Output:
    """Where `snapshot -o` writes, checked and opened before anything is collected.

    `-` is stdout. A regular file (reached directly or through symlinks, which stay) or a new path is
    written atomically: a temporary file beside it, renamed over it once complete, so a half-written
    snapshot never replaces a good one. Anything else that can be opened for writing (a device, a FIFO,
    /dev/stdout) is written through, never replaced. A missing directory, a directory, an empty name or
    a place pgdoctor may not write is one line and exit 2.
    """

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.stream: typing.TextIO | None = None
        self.tmp: str | None = None
        self.final: str | None = None
        self.mode: int | None = None
        if spec == "-":
            self.stream = sys.stdout
            return
        if not spec.strip():
            self._fail("give a file name (or - for standard output)")
        path = os.path.abspath(spec)
        try:
            st: os.stat_result | None = os.stat(path)  # follows symlinks
        except FileNotFoundError:
            st = None
        except OSError as exc:
            self._fail(exc.strerror or str(exc))
        if st is not None and stat.S_ISDIR(st.st_mode):
            self._fail("is a directory")
        special = st is not None and not stat.S_ISREG(st.st_mode)
        if special or path.startswith(("/dev/", "/proc/")):  # write through, never replace
            try:
                self.stream = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed in write/discard)
            except OSError as exc:
                self._fail(exc.strerror or str(exc))
            return
        real = os.path.realpath(path)  # a symlink (even a dangling one) names the file to write
        parent = os.path.dirname(real)
        if not os.path.isdir(parent):
            self._fail(f"no such directory {parent}")
        if st is not None:
            if not os.access(real, os.W_OK):
                self._fail("permission denied")
            self.mode = stat.S_IMODE(st.st_mode)
        try:
            fd, self.tmp = tempfile.mkstemp(prefix=f".{os.path.basename(real)}.", dir=parent)
        except OSError as exc:
            self._fail(f"cannot write in {parent}: {exc.strerror or exc}")
        self.final = real
        self.stream = os.fdopen(fd, "w", encoding="utf-8")

    def _fail(self, why: str) -> typing.NoReturn:
        raise PgDoctorError(f"-o {self.spec!r}: {why}", ExitCode.USAGE)

    def write(self, document: dict[str, Any]) -> None:
        assert self.stream is not None
        try:
            json.dump(document, self.stream, indent=1, sort_keys=False)
            self.stream.write("\n")
            self.stream.flush()
            if self.tmp is not None and self.final is not None:
                self.stream.close()
                if self.mode is None:
                    umask = os.umask(0)
                    os.umask(umask)
                    self.mode = 0o666 & ~umask  # mkstemp makes 0600; a snapshot is an ordinary file
                os.chmod(self.tmp, self.mode)
                os.replace(self.tmp, self.final)
                self.tmp = None
            elif self.stream is not sys.stdout:
                self.stream.close()
        except OSError as exc:
            self.discard()
            self._fail(f"cannot write: {exc.strerror or exc}")
        finally:
            self.discard()

    def discard(self) -> None:
        """Close, and remove the temporary file of a write that did not complete."""
        if self.stream is not None and self.stream is not sys.stdout and not self.stream.closed:
            with contextlib.suppress(OSError):
                self.stream.close()
        if self.tmp is not None:
            Path(self.tmp).unlink(missing_ok=True)
            self.tmp = None


def save(document: dict[str, Any], path: Path | str) -> None:
    """Write a snapshot document to `path` (see Output)."""
    out = Output(str(path))
    try:
        out.write(document)
    finally:
        out.discard()
