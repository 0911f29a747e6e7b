"""Typed rows <-> JSON, for snapshots: frozen dataclasses of plain values, checked on the way in.

JSON is decoded straight into the dataclasses by msgspec (in C): types are exact (a bool is not an int, a
float is not an int), floats are finite (NaN and Infinity are no JSON; 1e400 is out of range), strings
are valid UTF-8 without lone surrogates, and the ranges the row types declare (`collect.ranges`: pids,
blockers, server versions, 64-bit integers) hold. What msgspec does not check is checked here: the
integers of types that do not declare their range fit 64 bits (small parts: decoded plainly and walked
first), and a setting pgdoctor computes with holds a number (`check_settings`).

Forward compatibility: a field added to a row type after snapshots were written gets a default (or a
default_factory), and a snapshot that lacks it reads as that default; a field without one must be there.
Every such default is listed in the README's snapshot section (tests/test_snapshot_format1.py checks the
list against the types). A field is never removed from what a snapshot may hold: an old snapshot's field
that no type reads any more is ignored.
"""

from __future__ import annotations

import dataclasses
import operator
import re
import typing
from typing import Any, TypeVar

import msgspec

from pgdoctor.collect.ranges import INT_MAX, INT_MIN  # the integers a snapshot may hold: 64 bits
from pgdoctor.errors import ExitCode, PgDoctorError

T = TypeVar("T")


def to_jsonable(value: Any) -> Any:
    """A dataclass tree as dicts, lists and plain values."""
    return msgspec.to_builtins(value)


def has_default(f: dataclasses.Field[Any]) -> bool:
    """Whether a snapshot may lack this field (it reads as the default)."""
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def _problem(where: str, text: str) -> PgDoctorError:
    return PgDoctorError(f"invalid snapshot: {where}{text}", ExitCode.USAGE)


# msgspec's words for a value that does not fit, and where ("$.activity[3].pid")
_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_EXPECTED = re.compile(r"^Expected `(?P<want>[^`]*)`(?P<rest>.*?)(?:, got `(?P<got>[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]*)`$")


def _place(where: str, path: str) -> str:
    """`where` (a dataset, `activity`) joined with msgspec's path inside it."""
    path = path.lstrip(".")
    if not path:
        return where
    return where + path if path.startswith("[") else f"{where}.{path}"


def invalid(where: str, exc: msgspec.ValidationError) -> PgDoctorError:
    """A ValidationError as one line: `<where>.activity[3].pid should be int, found str`."""
    m = _AT.match(str(exc))
    assert m is not None  # the pattern matches any text
    what, place = m.group("what"), _place(where, m.group("path") or "")
    not_str = _NOT_STR.match(what)
    if not_str:  # a SharedStr column (sys.intern's words)
        got = not_str.group("got")
        return _problem("", f"{place} should be str, found {_JSON_TYPE.get(got, got)}")
    missing = _MISSING.match(what)
    if missing:
        return _problem("", f"{place} lacks {missing.group('field')}")
    expected = _EXPECTED.match(what)
    if expected:
        want = expected.group("want") + expected.group("rest")
        got = expected.group("got")
        return _problem("", f"{place} should be {want}" + (f", found {got}" if got else ""))
    return _problem("", f"{place}: {what}")


def _find_wide(value: Any, path: str) -> str | None:
    if type(value) is int:
        return None if INT_MIN <= value <= INT_MAX else path
    if type(value) is dict:
        items: typing.Iterable[tuple[str, Any]] = ((f".{k}", v) for k, v in value.items())
    elif type(value) is list:
        items = ((f"[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for step, item in items:
        found = _find_wide(item, path + step)
        if found is not None:
            return found
    return None


# msgspec's names for what JSON holds, for a value that is not a str where a `SharedStr` must be
_JSON_TYPE = {"int": "int", "float": "float", "bool": "bool", "list": "array", "dict": "object"}
_NOT_STR = re.compile(r"^intern\(\) argument must be str, not (?P<got>\w+)$")

# msgspec's dec_hook for `SharedStr` columns (`collect.ranges`): SharedStr[text], the one str object for
# that text. 100,000 pg_stat_activity rows repeat a few states, users, databases, applications and
# queries: shared, they take half the memory (~50 MB).
SHARE_STRINGS = typing.cast(typing.Callable[[type, Any], Any], operator.getitem)


def decode(cls: type[T], data: bytes | bytearray | memoryview, where: str, ints_bounded: bool = False) -> T:
    """JSON straight into `cls`, or one line saying what does not fit (a PgDoctorError, exit 2).
    `ints_bounded`: every int of `cls` declares its range (`collect.ranges`), which msgspec checks;
    else the JSON is first decoded plainly and every integer checked to fit 64 bits (small parts)."""
    try:
        if not ints_bounded:
            wide = _find_wide(msgspec.json.decode(data), "")
            if wide is not None:
                raise _problem("", f"{_place(where, wide)} should be a 64-bit int")
        value: T = msgspec.json.decode(data, type=cls, dec_hook=SHARE_STRINGS)
    except msgspec.ValidationError as exc:
        raise invalid(where, exc) from None
    except msgspec.DecodeError as exc:
        raise _not_json(where, data, exc) from None
    except RecursionError:
        raise _problem(where, ": nested too deep") from None
    check_settings(value, where)
    return value


def convert(cls: type[T], data: Any, where: str) -> T:
    """Decoded JSON (dicts, lists, plain values) into `cls`, checked as `decode` checks."""
    wide = _find_wide(data, "")
    if wide is not None:
        raise _problem("", f"{_place(where, wide)} should be a 64-bit int")
    try:
        value: T = msgspec.convert(data, type=cls, dec_hook=SHARE_STRINGS)
    except msgspec.ValidationError as exc:
        raise invalid(where, exc) from None
    except RecursionError:
        raise _problem(where, ": nested too deep") from None
    check_settings(value, where)
    return value


def not_json(data: bytes | bytearray | memoryview, exc: msgspec.DecodeError) -> str:
    """Why msgspec refused the JSON. It calls a lone surrogate (\\ud800) malformed; the standard library
    (on this error path only) tells the two apart."""
    import json

    try:
        json.loads(bytes(data))
    except (ValueError, RecursionError):
        return f"not valid JSON (truncated or corrupt?): {exc}"
    return "holds a lone surrogate (\\ud800-\\udfff), which no text encodes"


def _not_json(where: str, data: bytes | bytearray | memoryview, exc: msgspec.DecodeError) -> PgDoctorError:
    return _problem(where, f": {not_json(data, exc)}")


# Settings PostgreSQL types `integer` that pgdoctor reads from the short settings list (ServerInfo).
INTEGER_SETTINGS = frozenset(
    """max_connections superuser_reserved_connections reserved_connections
    idle_in_transaction_session_timeout idle_session_timeout statement_timeout max_wal_senders
    max_worker_processes autovacuum_max_workers max_locks_per_transaction max_prepared_transactions
    deadlock_timeout lock_timeout pg_stat_statements.max work_mem""".split()
)
# Row types whose `setting` pgdoctor computes with (pg_settings rows), by class name.
SETTING_ROWS = frozenset({"SettingRow", "FullSettingRow"})


def setting_problem(row: Any) -> str | None:
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


def check_settings(value: Any, where: str, depth: int = 0) -> None:
    """Every pg_settings row in the dataclass tree `value` (its server's, a settings dataset's) holds a
    setting pgdoctor can compute with. Lists of other rows are not walked (they hold none)."""
    if depth > 3:
        return
    if type(value) is list:
        if value and type(value[0]).__name__ in SETTING_ROWS:
            for row in value:
                problem = setting_problem(row)
                if problem:
                    raise _problem(where, f": {problem}")
        return
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            child = getattr(value, f.name)
            if type(child) is list or dataclasses.is_dataclass(child):
                check_settings(child, where, depth + 1)
