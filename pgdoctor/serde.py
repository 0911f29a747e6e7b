"""Typed rows <-> JSON, for snapshots: frozen dataclasses of plain values, checked on the way in."""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache
from typing import Any, TypeVar, Union

from pgdoctor.errors import ExitCode, PgDoctorError

T = TypeVar("T")


def to_jsonable(value: Any) -> Any:
    """A dataclass tree as dicts, lists and plain values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_jsonable(cls: type[T], data: Any, where: str = "snapshot") -> T:
    """Rebuild `cls` from JSON data, refusing anything that does not fit its type hints."""
    return typing.cast(T, _convert(cls, data, where))


def _bad(where: str, expected: Any, data: Any) -> PgDoctorError:
    name = getattr(expected, "__name__", str(expected))
    return PgDoctorError(
        f"invalid snapshot: {where} should be {name}, found {type(data).__name__}", ExitCode.USAGE
    )


def _convert(tp: Any, data: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if data is None and type(None) in args:
            return None
        errors: list[PgDoctorError] = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, data, where)
            except PgDoctorError as exc:
                errors.append(exc)
        raise errors[0] if errors else _bad(where, tp, data)
    if dataclasses.is_dataclass(tp):
        if not isinstance(data, dict):
            raise _bad(where, tp, data)
        hints = _hints(tp)  # type: ignore[arg-type]
        names = {f.name for f in dataclasses.fields(tp)}
        missing = names - data.keys()
        if missing:
            raise PgDoctorError(
                f"invalid snapshot: {where} lacks {', '.join(sorted(missing))}", ExitCode.USAGE
            )
        return typing.cast(Any, tp)(**{n: _convert(hints[n], data[n], f"{where}.{n}") for n in names})
    if origin in (list, tuple):
        args = typing.get_args(tp)
        if not isinstance(data, list):
            raise _bad(where, tp, data)
        item = args[0] if args else Any
        items = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(data)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        _key_t, val_t = typing.get_args(tp)
        if not isinstance(data, dict):
            raise _bad(where, tp, data)
        return {k: _convert(val_t, v, f"{where}.{k}") for k, v in data.items()}
    if tp is Any:
        return data
    if tp is float:
        if isinstance(data, int | float) and not isinstance(data, bool):
            return float(data)
        raise _bad(where, tp, data)
    if tp is int:
        if isinstance(data, int) and not isinstance(data, bool):
            return data
        raise _bad(where, tp, data)
    if tp in (str, bool):
        if isinstance(data, tp):
            return data
        raise _bad(where, tp, data)
    if tp is type(None):
        if data is None:
            return None
        raise _bad(where, tp, data)
    raise PgDoctorError(f"internal: cannot read {tp!r} from a snapshot", ExitCode.USAGE)
