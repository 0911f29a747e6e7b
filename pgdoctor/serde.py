"""Typed rows <-> JSON, for snapshots: frozen dataclasses of plain values, checked on the way in.

Reading builds one converter per type (cached), so a snapshot of 100,000 rows costs one pass of plain
function calls; the path to a bad value (`activity[3].pid`) is only assembled when something is wrong.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar, Union

from pgdoctor.errors import ExitCode, PgDoctorError

T = TypeVar("T")
Converter = Callable[[Any], Any]


def to_jsonable(value: Any) -> Any:
    """A dataclass tree as dicts, lists and plain values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


class _Mismatch(Exception):
    """A value that does not fit; `path` grows as the exception climbs out of containers."""

    def __init__(self, expected: str, found: Any, missing: str = "") -> None:
        super().__init__(expected)
        self.expected = expected
        self.found = found
        self.missing = missing
        self.path: list[str] = []


def from_jsonable(cls: type[T], data: Any, where: str = "snapshot") -> T:
    """Rebuild `cls` from JSON data, refusing anything that does not fit its type hints."""
    try:
        return typing.cast(T, _converter(typing.cast(Any, cls))(data))
    except _Mismatch as bad:
        place = where + "".join(reversed(bad.path))
        if bad.missing:
            text = f"invalid snapshot: {place} lacks {bad.missing}"
        else:
            text = f"invalid snapshot: {place} should be {bad.expected}, found {type(bad.found).__name__}"
        raise PgDoctorError(text, ExitCode.USAGE) from None


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


@cache
def _converter(tp: Any) -> Converter:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return _union(
            [a for a in typing.get_args(tp) if a is not type(None)], type(None) in typing.get_args(tp)
        )
    if dataclasses.is_dataclass(tp):
        return _dataclass(tp)
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return _sequence(_converter(args[0]) if args else _any, origin is tuple, _name(tp))
    if origin is dict:
        return _mapping(_converter(typing.get_args(tp)[1]))
    if tp is Any:
        return _any
    if tp is float:
        return _float
    if tp in (int, str, bool):
        return _exact(tp)
    if tp is type(None):
        return _exact(type(None))
    raise TypeError(f"cannot read {tp!r} from a snapshot")


def _any(data: Any) -> Any:
    return data


def _float(data: Any) -> float:
    if type(data) is float or type(data) is int:
        return float(data)
    raise _Mismatch("float", data)


def _exact(tp: type) -> Converter:
    def convert(data: Any) -> Any:
        if type(data) is tp:  # exact: a bool is not an int here
            return data
        raise _Mismatch(_name(tp), data)

    return convert


def _union(options: list[Any], nullable: bool) -> Converter:
    converters = [_converter(o) for o in options]

    def convert(data: Any) -> Any:
        if data is None and nullable:
            return None
        first: _Mismatch | None = None
        for conv in converters:
            try:
                return conv(data)
            except _Mismatch as bad:
                first = first or bad
        raise first or _Mismatch(" | ".join(map(_name, options)), data)

    return convert


def _dataclass(cls: Any) -> Converter:
    hints = typing.get_type_hints(cls)
    fields = [(f.name, _converter(hints[f.name])) for f in dataclasses.fields(cls)]
    # fields added later have defaults: snapshots taken before them lack them and stay readable
    names = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}

    def convert(data: Any) -> Any:
        if type(data) is not dict:
            raise _Mismatch(_name(cls), data)
        if not names <= data.keys():
            raise _Mismatch(_name(cls), data, missing=", ".join(sorted(names - data.keys())))
        values = {}
        for name, conv in fields:
            if name not in data:
                continue
            try:
                values[name] = conv(data[name])
            except _Mismatch as bad:
                bad.path.append(f".{name}")
                raise
        return cls(**values)

    return convert


def _sequence(item: Converter, as_tuple: bool, label: str) -> Converter:
    def convert(data: Any) -> Any:
        if type(data) is not list:
            raise _Mismatch(label, data)
        out = []
        for i, value in enumerate(data):
            try:
                out.append(item(value))
            except _Mismatch as bad:
                bad.path.append(f"[{i}]")
                raise
        return tuple(out) if as_tuple else out

    return convert


def _mapping(value_conv: Converter) -> Converter:
    def convert(data: Any) -> Any:
        if type(data) is not dict:
            raise _Mismatch("dict", data)
        out = {}
        for key, value in data.items():
            try:
                out[key] = value_conv(value)
            except _Mismatch as bad:
                bad.path.append(f".{key}")
                raise
        return out

    return convert
