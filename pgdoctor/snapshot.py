"""Snapshots: everything the commands read, saved as versioned JSON, read back as the same rows."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import stat
import sys
import tempfile
import typing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pgdoctor import __version__
from pgdoctor.collect import DATASETS
from pgdoctor.errors import ExitCode, PgDoctorError
from pgdoctor.serde import from_jsonable, to_jsonable

FORMAT = "pgdoctor-snapshot"
FORMAT_VERSION = 1

T = TypeVar("T")


def collector(name: str) -> typing.Callable[[Any], Any]:
    module, func = DATASETS[name].split(":")
    return typing.cast(typing.Callable[[Any], Any], getattr(importlib.import_module(module), func))


def dataset_type(name: str) -> type:
    """The dataclass a dataset's collector returns, from its return annotation."""
    return typing.cast(type, typing.get_type_hints(collector(name))["return"])


def capture(db: Any, names: typing.Iterable[str] | None = None) -> dict[str, Any]:
    """Collect datasets from a live server into a snapshot document."""
    datasets = {name: to_jsonable(collector(name)(db)) for name in (names or DATASETS)}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "pgdoctor_version": __version__,
        "captured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "server": {"version_num": db.server_version_num, "version": db.server_version},
        "datasets": datasets,
    }


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


# The largest snapshot file read: 100,000 sessions make about 50 MB; anything past this is not one
# pgdoctor wrote (and reading /dev/zero must stop).
MAX_SNAPSHOT_BYTES = 512 * 1024 * 1024
_CHUNK = 1024 * 1024


def _refuse(path: Path | str, why: str) -> typing.NoReturn:
    raise PgDoctorError(f"snapshot {path}: {why}", ExitCode.USAGE)


def _read_bounded(path: Path | str) -> bytes:
    """The file's bytes, read in chunks: at most MAX_SNAPSHOT_BYTES, and only if it starts like JSON."""
    chunks: list[bytes] = []
    size = 0
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(_CHUNK)
            if not chunk:
                break
            head = chunk.lstrip(b" \t\r\n")[:1]
            if not chunks and head and head not in b'{["-0123456789tfn':  # /dev/zero stops here
                _refuse(path, "not valid JSON: no JSON value starts with this byte")
            size += len(chunk)
            if size > MAX_SNAPSHOT_BYTES:
                _refuse(
                    path, f"larger than {MAX_SNAPSHOT_BYTES // (1024 * 1024)} MiB; not a pgdoctor snapshot"
                )
            chunks.append(chunk)
    return b"".join(chunks)


def _no_constant(name: str) -> typing.NoReturn:
    raise ValueError(f"{name} is not a number a snapshot holds")


def _lone_surrogate(value: Any) -> bool:
    if type(value) is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if type(value) is dict:
        return any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in value.items())
    if type(value) is list:
        return any(_lone_surrogate(v) for v in value)
    return False


def read(path: Path) -> dict[str, Any]:
    """Load and check a snapshot file's envelope; one clear error for anything that is not one."""
    try:
        text = _read_bounded(path).decode("utf-8")
    except FileNotFoundError:
        raise PgDoctorError(f"snapshot {path}: no such file", ExitCode.USAGE) from None
    except IsADirectoryError:
        _refuse(path, "is a directory")
    except (OSError, UnicodeDecodeError) as exc:
        raise PgDoctorError(f"snapshot {path}: cannot read it ({exc})", ExitCode.USAGE) from None
    try:
        doc = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise PgDoctorError(
            f"snapshot {path}: not valid JSON (truncated or corrupt?): {exc.msg} at line {exc.lineno}",
            ExitCode.USAGE,
        ) from None
    except RecursionError:
        _refuse(path, "nested deeper than a snapshot is")
    except ValueError as exc:  # NaN, Infinity; an integer of more than 4,300 digits
        _refuse(path, f"not a snapshot's JSON ({str(exc)[:100]})")
    if ("\\ud" in text or "\\uD" in text) and _lone_surrogate(doc):  # JSON escapes can make them
        _refuse(path, "holds a lone surrogate (\\ud800-\\udfff), which no text encodes")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PgDoctorError(f"snapshot {path}: not a pgdoctor snapshot", ExitCode.USAGE)
    version = doc.get("format_version")
    if type(version) is not int or version < 1:
        _refuse(path, f"format_version {str(version)[:20]!r} is not a version number")
    if version > FORMAT_VERSION:
        raise PgDoctorError(
            f"snapshot {path}: format version {version!r} is newer than this pgdoctor reads "
            f"({FORMAT_VERSION}); upgrade pgdoctor",
            ExitCode.USAGE,
        )
    if not isinstance(doc.get("datasets"), dict):
        raise PgDoctorError(f"snapshot {path}: has no datasets", ExitCode.USAGE)
    return doc


def load_dataset(path: Path, name: str, cls: type[T]) -> T:
    """One dataset of a snapshot file, as the same dataclass a live collector returns."""
    doc = read(path)
    if name not in doc["datasets"]:
        raise PgDoctorError(
            f"snapshot {path}: has no {name!r} data (taken with pgdoctor "
            f"{str(doc.get('pgdoctor_version', '?'))[:20]}); take a new one with `pgdoctor snapshot`",
            ExitCode.USAGE,
        )
    try:
        return from_jsonable(cls, doc["datasets"][name], where=f"{path}: {name}")
    except PgDoctorError:
        raise
    except (TypeError, ValueError) as exc:
        raise PgDoctorError(f"snapshot {path}: invalid {name} data ({exc})", ExitCode.USAGE) from None


def load_optional(path: Path, name: str, cls: type[T]) -> T | None:
    """A dataset a snapshot may lack (taken without its option: `snapshot --pgbouncer-dsn`), else None."""
    if name not in read(path)["datasets"]:
        return None
    return load_dataset(path, name, cls)
