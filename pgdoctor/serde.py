"""Typed rows <-> JSON, for snapshots: frozen dataclasses of plain values, checked on the way in.

Reading builds one converter per type (cached), so a snapshot of 100,000 rows costs one pass of plain
function calls; the path to a bad value (`activity[3].pid`) is only assembled when something is wrong.

Forward compatibility: a field added to a row type after snapshots were written gets a default (or a
default_factory), and a snapshot that lacks it reads as that default; a field without one must be there.
Every such default is listed in the README's snapshot section (tests/test_snapshot_format1.py checks the
list against the types). A field is never removed from what a snapshot may hold: an old snapshot's field
that no type reads any more is ignored.
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
Converter = Callable[..., Any]


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

    def __init__(self, expected: str, found: Any, missing: str = "", problem: bool = False) -> None:
        super().__init__(expected)
        self.expected = expected
        self.found = found
        self.missing = missing
        self.problem = problem  # `expected` is the whole explanation
        self.path: list[str] = []


def from_jsonable(cls: type[T], data: Any, where: str = "snapshot", given: dict[str, Any] | None = None) -> T:
    """Rebuild `cls` from JSON data, refusing anything that does not fit its type hints. `given`: fields
    of the dataclass `cls` already built (data's values for them are not read)."""
    try:
        if given:
            return typing.cast(T, _dataclass(cls, frozenset(given))(data, given))
        return typing.cast(T, _converter(typing.cast(Any, cls))(data))
    except RecursionError:
        raise PgDoctorError(f"invalid snapshot: {where}: nested too deep", ExitCode.USAGE) from None
    except _Mismatch as bad:
        place = where + "".join(reversed(bad.path))
        if bad.missing:
            text = f"invalid snapshot: {place} lacks {bad.missing}"
        elif bad.problem:
            text = f"invalid snapshot: {place}: {bad.expected}"
        elif type(bad.found) in (int, float) and type(bad.found) is not bool:
            text = f"invalid snapshot: {place} should be {bad.expected}, found {str(bad.found)[:40]}"
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
    if tp is int:
        return _int
    if tp in (str, bool):
        return _exact(tp)
    if tp is type(None):
        return _exact(type(None))
    raise TypeError(f"cannot read {tp!r} from a snapshot")


# Integers a snapshot may hold: PostgreSQL's widest (bigint; pg_stat_statements counters are int8,
# queryid is int8, xids read as text). Anything wider was not written by pgdoctor.
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
# What a value typed Any may hold: plain values nested at most this deep.
ANY_DEPTH = 8


def _any(data: Any, depth: int = 0) -> Any:
    if type(data) in (dict, list):
        if depth >= ANY_DEPTH:
            raise _Mismatch("a shallower value", data)
        for value in data.values() if type(data) is dict else data:
            _any(value, depth + 1)
    elif type(data) is float:
        _float(data)
    elif type(data) is int:
        _int(data)
    return data


def _float(data: Any) -> float:
    if type(data) is float:
        if data - data == 0.0:  # not NaN, not ±Infinity
            return data
        raise _Mismatch("a finite float", data)
    if type(data) is int and INT_MIN <= data <= INT_MAX:
        return float(data)
    raise _Mismatch("float", data)


def _int(data: Any) -> int:
    if type(data) is int and INT_MIN <= data <= INT_MAX:  # exact: a bool is not an int here
        return data
    raise _Mismatch("a 64-bit int" if type(data) is int else "int", data)


def _int_at_least(low: int) -> Converter:
    def convert(data: Any) -> int:
        if type(data) is int and low <= data <= INT_MAX:
            return data
        raise _Mismatch(f"an int >= {low}" if type(data) is int else "int", data)

    return convert


def _setting_problem(row: Any) -> str | None:
    """A setting pgdoctor computes with must hold a number: a finite one when it has a unit or a numeric
    vartype (pg_settings), an integer when PostgreSQL types it so."""
    value = row.setting
    if value == "":
        return None
    integer = getattr(row, "vartype", None) == "integer" or row.name in INTEGER_SETTINGS
    if not (integer or row.unit or getattr(row, "vartype", None) == "real"):
        return None
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        return f"setting {row.name} = {value[:40]!r}: not {'an integer' if integer else 'a number'}"
    if not INT_MIN <= number <= INT_MAX:  # False for NaN and ±Infinity too
        return f"setting {row.name} = {value[:40]!r}: out of range"
    return None


# Settings PostgreSQL types `integer` that pgdoctor reads from the short settings list (ServerInfo).
INTEGER_SETTINGS = frozenset(
    """max_connections superuser_reserved_connections reserved_connections
    idle_in_transaction_session_timeout idle_session_timeout statement_timeout max_wal_senders
    max_worker_processes autovacuum_max_workers max_locks_per_transaction max_prepared_transactions
    deadlock_timeout lock_timeout pg_stat_statements.max work_mem""".split()
)
# Checks of a whole row after its fields were read, by class name.
_ROW_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "SettingRow": _setting_problem,
    "FullSettingRow": _setting_problem,
}


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


def has_default(f: dataclasses.Field[Any]) -> bool:
    """Whether a snapshot may lack this field (it reads as the default)."""
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def _dataclass(cls: Any, given: frozenset[str] = frozenset()) -> Converter:
    hints = typing.get_type_hints(cls)
    fields = [
        (f.name, _FIELD_CONVERTERS.get((f.name, hints[f.name])) or _converter(hints[f.name]))
        for f in dataclasses.fields(cls)
        if f.name not in given
    ]
    # fields added later have defaults: snapshots taken before them lack them and stay readable
    names = {f.name for f in dataclasses.fields(cls) if not has_default(f) and f.name not in given}
    check = _ROW_CHECKS.get(cls.__name__)

    def convert(data: Any, built: dict[str, Any] | None = None) -> Any:
        if type(data) is not dict:
            raise _Mismatch(_name(cls), data)
        if not names <= data.keys():
            raise _Mismatch(_name(cls), data, missing=", ".join(sorted(names - data.keys())))
        values = dict(built or {})
        for name, conv in fields:
            if name not in data:
                continue
            try:
                values[name] = conv(data[name])
            except _Mismatch as bad:
                bad.path.append(f".{name}")
                raise
        row = cls(**values)
        if check is not None:
            problem = check(row)
            if problem:
                raise _Mismatch(problem, data, problem=True)
        return row

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


# Fields whose values have a sane range beyond their type, by name and type: a process id is positive
# (0 in pg_blocking_pids() stands for a prepared transaction), a server version is 9.0 or later.
_FIELD_CONVERTERS: dict[tuple[str, Any], Converter] = {
    ("pid", int): _int_at_least(1),
    ("blocked_by", list[int]): _sequence(_int_at_least(0), False, "list[int]"),
    ("version_num", int): _int_at_least(90000),
}
