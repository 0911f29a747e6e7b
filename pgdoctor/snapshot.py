"""Snapshots: everything the commands read, saved as versioned JSON, read back as the same rows."""

from __future__ import annotations

import importlib
import json
import os
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


def save(document: dict[str, Any], path: Path) -> None:
    """Write atomically: a half-written snapshot never replaces a good file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(document, fh, indent=1, sort_keys=False)
            fh.write("\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a snapshot is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: Path) -> dict[str, Any]:
    """Load and check a snapshot file's envelope; one clear error for anything that is not one."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PgDoctorError(f"snapshot {path}: no such file", ExitCode.USAGE) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PgDoctorError(f"snapshot {path}: cannot read it ({exc})", ExitCode.USAGE) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PgDoctorError(
            f"snapshot {path}: not valid JSON (truncated or corrupt?): {exc.msg} at line {exc.lineno}",
            ExitCode.USAGE,
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PgDoctorError(f"snapshot {path}: not a pgdoctor snapshot", ExitCode.USAGE)
    version = doc.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
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
            f"{doc.get('pgdoctor_version', '?')}); take a new one with `pgdoctor snapshot`",
            ExitCode.USAGE,
        )
    try:
        return from_jsonable(cls, doc["datasets"][name], where=f"{path}: {name}")
    except PgDoctorError:
        raise
    except (TypeError, ValueError) as exc:
        raise PgDoctorError(f"snapshot {path}: invalid {name} data ({exc})", ExitCode.USAGE) from None
