"""Snapshots: everything the commands read, saved as versioned JSON, read back as the same rows."""

from __future__ import annotations

import dataclasses
import functools
import gc
import importlib
import os
import stat
import typing
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from pgdoctor import __version__
from pgdoctor.collect import DATASETS, POOLER_DATASETS, collector
from pgdoctor.errors import ExitCode, PgDoctorError
from pgdoctor.gcpause import gc_paused
from pgdoctor.serde import convert, decode, not_json, to_jsonable
from pgdoctor.snapshot.format1 import from_format_1
from pgdoctor.snapshot.output import Output, save

__all__ = ["Output", "capture", "collector", "dataset_type", "load_dataset", "load_datasets", "read", "save"]

if typing.TYPE_CHECKING:
    from types import ModuleType

FORMAT = "pgdoctor-snapshot"
# 1: every dataset held its own `server` and its own view of pg_stat_activity (pgdoctor 0.1).
# 2: one `server` and one `activity` (pg_stat_activity, read once) beside `datasets`, shared by all.
FORMAT_VERSION = 2

T = TypeVar("T")

# Fields of a dataset's dataclass that a format-2 snapshot stores once, beside the datasets: the server,
# pg_stat_activity, and (pgbouncer) the PostgreSQL server behind the pooler, which is the snapshot's own.
SHARED = ("server", "activity", "postgres")


def _spec(name: str) -> tuple[str, str]:
    module, cls = {**DATASETS, **POOLER_DATASETS}[name].split(":")
    return module, cls


def _module(name: str) -> ModuleType:
    return importlib.import_module(_spec(name)[0])


def dataset_type(name: str) -> type:
    """The dataclass of a dataset (`connections`, …, `pgbouncer`)."""
    module, cls = _spec(name)
    return typing.cast(type, getattr(importlib.import_module(module), cls))


def _own(data: Any) -> dict[str, Any]:
    """A dataset as a format-2 snapshot stores it: without what is stored once beside the datasets."""
    doc = to_jsonable(data)
    return {key: value for key, value in doc.items() if key not in SHARED}


def capture(db: Any, names: typing.Iterable[str] | None = None) -> dict[str, Any]:
    """Collect datasets from a live server into a snapshot document: the server (with every setting any
    dataset reads) and pg_stat_activity once, then what each dataset adds."""
    from pgdoctor.collect.activity import collect_activity
    from pgdoctor.collect.server import collect_server

    modules = {name: _module(name) for name in (names or DATASETS)}
    server = collect_server(db, sorted({s for m in modules.values() for s in m.SETTINGS}))
    activity = collect_activity(db)
    datasets = {name: _own(m.capture(db, server, activity)) for name, m in modules.items()}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "pgdoctor_version": __version__,
        "captured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "server": to_jsonable(server),
        "activity": to_jsonable(activity),
        "datasets": datasets,
    }


def add_pgbouncer(document: dict[str, Any], dsn: str | None, timeout_s: float) -> None:
    """Add PgBouncer's console (`snapshot --pgbouncer-dsn`) to a captured document; the server behind it
    is the document's own (read back as the dataset's `postgres`)."""
    from pgdoctor.collect.pgbouncer import collect_pgbouncer

    document["datasets"]["pgbouncer"] = _own(collect_pgbouncer(dsn, timeout_s))


# The largest snapshot file read: 100,000 sessions make about 50 MB; anything past this is not one
# pgdoctor wrote (and reading /dev/zero must stop).
MAX_SNAPSHOT_BYTES = 512 * 1024 * 1024
_CHUNK = 1024 * 1024


def _refuse(path: Path | str, why: str) -> typing.NoReturn:
    raise PgDoctorError(f"snapshot {path}: {why}", ExitCode.USAGE)


def _read_bounded(path: Path | str) -> bytearray:
    """The file's bytes in one buffer: at most MAX_SNAPSHOT_BYTES, and only if it starts like JSON. A
    regular file is read into a buffer of its size (no copy as it grows: 100,000 sessions are 46 MB);
    anything else (a pipe, /dev/zero) in chunks."""
    with open(path, "rb") as fh:
        st = os.fstat(fh.fileno())
        if stat.S_ISREG(st.st_mode) and 0 < st.st_size <= MAX_SNAPSHOT_BYTES:
            data = bytearray(st.st_size)
            got = fh.readinto(data)
            if got == st.st_size and not fh.read(1):  # not grown or shrunk while read
                _check_head(path, data)
                return data
            fh.seek(0)
        data = bytearray()
        while True:
            chunk = fh.read(_CHUNK)
            if not chunk:
                break
            if not data:
                _check_head(path, chunk)
            if len(data) + len(chunk) > MAX_SNAPSHOT_BYTES:
                _refuse(
                    path, f"larger than {MAX_SNAPSHOT_BYTES // (1024 * 1024)} MiB; not a pgdoctor snapshot"
                )
            data += chunk
    return data


def _check_head(path: Path | str, start: bytes | bytearray) -> None:
    head = bytes(start[:4096]).lstrip(b" \t\r\n")[:1]
    if head and head not in b'{["-0123456789tfn':  # /dev/zero stops here
        _refuse(path, "not valid JSON: no JSON value starts with this byte")


class _Envelope(msgspec.Struct):
    """A snapshot's outer object; the parts are kept as JSON text (msgspec.Raw) until a command reads
    one, so a command decodes only what it uses."""

    format: Any = None
    format_version: Any = None
    pgdoctor_version: Any = None
    server: msgspec.Raw = msgspec.Raw()
    activity: msgspec.Raw = msgspec.Raw()
    datasets: msgspec.Raw = msgspec.Raw()


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A snapshot file whose envelope was checked; its parts are still JSON text."""

    path: Path
    format_version: int
    pgdoctor_version: str
    server: msgspec.Raw  # format 2
    activity: msgspec.Raw  # format 2
    datasets: dict[str, msgspec.Raw]


# A file read with `keep`, kept for the next `read` of the same file (and only that one): `connections
# --snapshot` asks whether the file holds a sample, then loads its dataset, and the 46 MB of a
# 100,000-session snapshot are read and parsed once, not twice (~0.15 s). (file identity -> envelope)
_KEPT: dict[tuple[Any, ...], Snapshot] = {}


def _identity(path: Path) -> tuple[Any, ...] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def read(path: Path, keep: bool = False) -> Snapshot:
    """Load and check a snapshot file's envelope; one clear error for anything that is not one. `keep`:
    the next `read` of this file (unchanged) takes this envelope instead of reading it again."""
    key = _identity(path)
    kept = _KEPT.pop(key, None) if key is not None else None
    _KEPT.clear()
    snap = kept if kept is not None else _read(path)
    if keep and key is not None:
        _KEPT[key] = snap
    return snap


def _read(path: Path) -> Snapshot:
    try:
        data = _read_bounded(path)
    except FileNotFoundError:
        raise PgDoctorError(f"snapshot {path}: no such file", ExitCode.USAGE) from None
    except IsADirectoryError:
        _refuse(path, "is a directory")
    except OSError as exc:
        raise PgDoctorError(f"snapshot {path}: cannot read it ({exc})", ExitCode.USAGE) from None
    try:
        doc = msgspec.json.decode(data, type=_Envelope)
    except msgspec.ValidationError:  # not an object (a ValidationError is a DecodeError: first)
        raise PgDoctorError(f"snapshot {path}: not a pgdoctor snapshot", ExitCode.USAGE) from None
    except msgspec.DecodeError as exc:
        _refuse(path, not_json(data, exc))
    except RecursionError:
        _refuse(path, "nested deeper than a snapshot is")
    if doc.format != FORMAT:
        raise PgDoctorError(f"snapshot {path}: not a pgdoctor snapshot", ExitCode.USAGE)
    version = doc.format_version
    if type(version) is not int or version < 1:
        _refuse(path, f"format_version {str(version)[:20]!r} is not a version number")
    if version > FORMAT_VERSION:
        raise PgDoctorError(
            f"snapshot {path}: format version {version!r} is newer than this pgdoctor reads "
            f"({FORMAT_VERSION}); upgrade pgdoctor",
            ExitCode.USAGE,
        )
    try:
        datasets = msgspec.json.decode(doc.datasets or b"null", type=dict[str, msgspec.Raw] | None)
    except msgspec.ValidationError:
        datasets = None
    if datasets is None:
        raise PgDoctorError(f"snapshot {path}: has no datasets", ExitCode.USAGE)
    return Snapshot(
        path=path,
        format_version=version,
        pgdoctor_version=str(doc.pgdoctor_version or "?")[:20],
        server=doc.server,
        activity=doc.activity,
        datasets=datasets,
    )


def load_dataset(path: Path, name: str, cls: type[T]) -> T:
    """One dataset of a snapshot file, as the same dataclass a live collector returns.

    The cyclic garbage collector is off while it decodes (100,000 rows make no cycle; its passes over
    them would cost a third of the time), and what it loaded is frozen out of later passes (it lives as
    long as the command)."""
    with gc_paused():
        data = _decode(
            read(path), name, cls
        )  # the file's buffer lives as long as the snapshot: not past this
    gc.freeze()
    return data


def load_datasets(path: Path, wanted: dict[str, type], optional: Iterable[str] = ()) -> dict[str, Any]:
    """Several datasets of one snapshot file (`pgdoctor triage`), the file read and its shared server and
    pg_stat_activity decoded once for all; a dataset named in `optional` the snapshot lacks is None."""
    with gc_paused():
        snap = read(path)
        cache: dict[str, Any] = {}
        data = {
            name: None if name in optional and name not in snap.datasets else _decode(snap, name, cls, cache)
            for name, cls in wanted.items()
        }
    gc.freeze()
    return data


def _decode(snap: Snapshot, name: str, cls: type[T], cache: dict[str, Any] | None = None) -> T:
    """One dataset of a snapshot; `cache` keeps the shared parts decoded for the next dataset."""
    path = snap.path
    if name not in snap.datasets:
        raise PgDoctorError(
            f"snapshot {path}: has no {name!r} data (taken with pgdoctor {snap.pgdoctor_version}); "
            "take a new one with `pgdoctor snapshot`",
            ExitCode.USAGE,
        )
    where = f"{path}: {name}"
    raw = snap.datasets[name]
    if snap.format_version == 1:
        try:
            generic = msgspec.json.decode(raw)
        except (msgspec.ValidationError, RecursionError):  # integers of thousands of digits, depth
            raise PgDoctorError(f"invalid snapshot: {where}: not a snapshot's JSON", ExitCode.USAGE) from None
        except msgspec.DecodeError as exc:
            raise PgDoctorError(
                f"invalid snapshot: {where}: not valid JSON ({exc})", ExitCode.USAGE
            ) from None
        return convert(cls, from_format_1(name, generic), where)
    shared = _shared(snap, cls, {} if cache is None else cache)
    own: Any = decode(_own_type(typing.cast(Any, cls)), raw, where)
    return cls(**{f.name: getattr(own, f.name) for f in dataclasses.fields(own)}, **shared)


@functools.cache
def _own_type(cls: type) -> type:
    """`cls` without the fields a format-2 snapshot stores once beside the datasets (same name)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    fields: list[Any] = []
    for f in dataclasses.fields(cls):
        if f.name in SHARED:
            continue
        if f.default is not dataclasses.MISSING:
            fields.append((f.name, hints[f.name], dataclasses.field(default=f.default)))
        elif f.default_factory is not dataclasses.MISSING:
            fields.append((f.name, hints[f.name], dataclasses.field(default_factory=f.default_factory)))
        else:
            fields.append((f.name, hints[f.name]))
    return dataclasses.make_dataclass(cls.__name__, fields, frozen=True)


def _shared(snap: Snapshot, cls: type, cache: dict[str, Any]) -> dict[str, Any]:
    """The fields of `cls` a format-2 snapshot stores once, beside the datasets, read from there (or
    from `cache`, which keeps what was decoded for another dataset of the same file)."""
    from pgdoctor.collect.activity import ActivityRow
    from pgdoctor.collect.connections import ConnectionsData
    from pgdoctor.collect.server import ServerInfo

    names = {f.name for f in dataclasses.fields(cls)} & set(SHARED)
    if not names:
        return {}
    for key in ("server", "activity"):
        if not len(getattr(snap, key)):
            raise PgDoctorError(f"invalid snapshot: {snap.path} lacks {key}", ExitCode.USAGE)
    if "server" not in cache:
        cache["server"] = decode(ServerInfo, snap.server, f"{snap.path}: server")
    given: dict[str, Any] = {"server": cache["server"]}
    if names - {"server"}:
        if "activity" not in cache:
            where = f"{snap.path}: activity"
            cache["activity"] = decode(list[ActivityRow], snap.activity, where, ints_bounded=True)
        given["activity"] = cache["activity"]
    if "postgres" in names:
        given["postgres"] = ConnectionsData(server=given["server"], activity=given["activity"])
    return {key: value for key, value in given.items() if key in names}


def load_optional(path: Path, name: str, cls: type[T]) -> T | None:
    """A dataset a snapshot may lack (taken without its option: `snapshot --pgbouncer-dsn`), else None."""
    if name not in read(path).datasets:
        return None
    return load_dataset(path, name, cls)
