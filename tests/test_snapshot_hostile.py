"""Hostile --snapshot files (issue 10): one line and exit 2 for anything that is not a well-formed snapshot
of sane values; a bounded read; and a fuzz test that mutates the recorded snapshots in fixtures/ and runs
every command on them in-process: no exception but the project's own."""

from __future__ import annotations

import contextlib
import io
import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgdoctor import snapshot as snapshot_module
from pgdoctor.errors import PgDoctorError
from tests.conftest import FIXTURES, run_cli

INCIDENT = FIXTURES / "incident-pg18.json"
LOCKS = FIXTURES / "locks-pg15.json"
STATEMENTS = FIXTURES / "statements-pg15-1.10.json"  # format 1
LOCKS_FORMAT_1 = FIXTURES / "format-1" / "locks-pg15.json"


def _mutated(tmp_path: Path, source: Path, change: Any) -> Path:
    doc = json.loads(source.read_text())
    change(doc)
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(doc))  # NaN and Infinity are written as such, surrogates as \udxxx
    return path


def _setting(doc: dict[str, Any], name: str, value: str) -> None:
    for row in doc["server"]["settings"]:
        if row["name"] == name:
            row["setting"] = value


def _first_client(doc: dict[str, Any]) -> dict[str, Any]:
    activity = doc["activity"]
    return next(r for r in activity if r["backend_type"] == "client backend")


CASES = {
    "non-integer setting": lambda d: _setting(d, "max_connections", "lots"),
    "float setting where an int is": lambda d: _setting(d, "max_connections", "1.5"),
    "NaN age": lambda d: _first_client(d).update(state_age_s=math.nan),
    "Infinity age": lambda d: _first_client(d).update(xact_age_s=math.inf),
    "-Infinity age": lambda d: _first_client(d).update(query_age_s=-math.inf),
    "5,000-digit integer": lambda d: _first_client(d).update(xmin_age=None, pid=int("9" * 4000)),
    "integer beyond 64 bits": lambda d: _first_client(d).update(xmin_age=2**70),
    "lone surrogate": lambda d: _first_client(d).update(application_name="app\ud800"),
    "format_version true": lambda d: d.update(format_version=True),
    "format_version 0": lambda d: d.update(format_version=0),
    "negative pid": lambda d: _first_client(d).update(pid=-5),
    "negative blocker": lambda d: _first_client(d).update(blocked_by=[-1]),
    "version_num 0": lambda d: d["server"].update(version_num=0),
    "a bool for an int": lambda d: _first_client(d).update(pid=True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_insane_values_are_refused(tmp_path: Path, case: str) -> None:
    path = _mutated(tmp_path, INCIDENT, CASES[case])
    for command in (["connections"], ["recommend", "--ram", "64GB"]):
        result = run_cli(*command, "--snapshot", str(path))
        assert result.returncode == 2, (case, result.stderr[-800:])
        assert result.stderr.startswith("error: snapshot") or result.stderr.startswith(
            "error: invalid snapshot"
        )
        assert result.stderr.count("\n") == 1, result.stderr[-800:]
        assert result.stdout == ""


def test_literal_nan_and_huge_numbers_in_the_text(tmp_path: Path) -> None:
    text = INCIDENT.read_text()
    for token in ("NaN", "Infinity", "-Infinity", "1e400", "9" * 5000):
        path = tmp_path / "n.json"
        path.write_text(text.replace('"xmin_age": null', f'"xmin_age": {token}', 1))
        assert '"xmin_age": ' + token in path.read_text()
        result = run_cli("connections", "--snapshot", str(path))
        assert result.returncode == 2, (token, result.stderr[-800:])
        assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("depth", [500, 100_000])
def test_deep_nesting_is_refused(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "deep.json"
    path.write_text(
        '{"format": "pgdoctor-snapshot", "format_version": 1, "datasets": {"connections": '
        + "[" * depth
        + "]" * depth
        + "}}"
    )
    result = run_cli("connections", "--snapshot", str(path))
    assert result.returncode == 2, result.stderr[-800:]
    assert result.stderr.count("\n") == 1
    assert "Recursion" not in result.stderr


def test_dev_zero_stops_at_once() -> None:
    started = time.monotonic()
    result = run_cli("connections", "--snapshot", "/dev/zero", timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert time.monotonic() - started < 30  # it used to read until the kernel killed it (23 GB)


def test_reading_stops_at_the_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot_module, "MAX_SNAPSHOT_BYTES", 4 * 1024 * 1024)
    monkeypatch.setattr(snapshot_module, "_CHUNK", 1024 * 1024)
    path = tmp_path / "big.json"
    path.write_text('{"format": "pgdoctor-snapshot"' + " " * (5 * 1024 * 1024) + "}")
    with pytest.raises(PgDoctorError, match="larger than 4 MiB"):
        snapshot_module.read(path)


def test_every_recorded_snapshot_still_reads() -> None:
    for path in sorted(FIXTURES.glob("*.json")):
        doc = snapshot_module.read(path)
        for name in doc.datasets:
            snapshot_module.load_dataset(path, name, snapshot_module.dataset_type(name))


# --- fuzzing ------------------------------------------------------------------------------------------

COMMANDS = {
    INCIDENT: [
        ["connections", "--sessions", "--full"],
        ["recommend", "--ram", "64GB", "--app", "w=4x2"],
        ["triage", "--full"],
    ],
    LOCKS: [["locks", "--all", "--full"]],
    STATEMENTS: [["slow-queries", "--full"]],
    LOCKS_FORMAT_1: [["locks", "--all", "--full"], ["connections"]],
}
DOCS = {path: json.loads(path.read_text()) for path in COMMANDS}


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


_NASTY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**63, 2**64, -(2**63) - 1, int("9" * 300)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["", "\ud800", "x\udfff", "-1", "1e400", "nan", "1.5", "\x1b[2J", "[bold]"]),
    st.just([]),
    st.just({}),
    st.lists(st.integers(min_value=-3, max_value=3), max_size=3),
    st.integers(min_value=1, max_value=400).map(_nested),
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:3]):  # the first rows stand for all
            out += _paths(v, (*prefix, i))
    return out


PATHS = {source: _paths(doc)[1:] for source, doc in DOCS.items()}


def _apply(doc: Any, path: tuple[Any, ...], op: str, value: Any) -> None:
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if op == "delete" and isinstance(parent, dict):
        del parent[last]
    elif op == "delete" and isinstance(parent, list):
        parent.pop(last)
    else:
        parent[last] = value


def _run_in_process(args: list[str]) -> None:
    from pgdoctor.cli import app

    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        contextlib.suppress(PgDoctorError, typer.Exit),
    ):
        app(args, standalone_mode=False)


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzzed_snapshots_raise_nothing_but_pgdoctor_errors(tmp_path: Path, data: st.DataObject) -> None:
    source = data.draw(st.sampled_from(list(COMMANDS)))
    doc = json.loads(json.dumps(DOCS[source]))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        path = data.draw(st.sampled_from(PATHS[source]))
        op = data.draw(st.sampled_from(["replace", "replace", "delete"]))
        with contextlib.suppress(KeyError, IndexError, TypeError):
            _apply(doc, path, op, data.draw(_NASTY))
    text = json.dumps(doc)
    if data.draw(st.booleans()):  # damage the text itself
        at = data.draw(st.integers(min_value=0, max_value=len(text)))
        text = (
            text[:at]
            + data.draw(st.sampled_from(["", "}", "\\", '"', "NaN", "\x00", "[" * 2000]))
            + text[at:]
        )
    target = tmp_path / "fuzz.json"
    target.write_text(text, encoding="utf-8", errors="surrogatepass")
    for command in COMMANDS[source]:
        for fmt in ("plain", "json"):
            _run_in_process([*command, "--snapshot", str(target), "-f", fmt])


def test_every_int_of_an_activity_row_declares_its_range() -> None:
    """The 100,000 activity rows are decoded without a second pass (serde.decode ints_bounded): msgspec
    checks every int against its declared range, so each must have one."""
    import typing

    import msgspec

    from pgdoctor.collect.activity import ActivityRow
    from pgdoctor.serde import decode

    def ints(hint: Any) -> list[Any]:
        """The int types inside a hint (X | None, list[X]), Annotated ones whole."""
        if typing.get_origin(hint) is typing.Annotated:
            return [hint] if typing.get_args(hint)[0] is int else []
        if hint is int:
            return [hint]
        return [t for arg in typing.get_args(hint) for t in ints(arg)]

    hints = typing.get_type_hints(ActivityRow, include_extras=True)
    assert [name for name, hint in hints.items() if ints(hint)] == [
        "pid",
        "xmin_age",
        "blocked_by",
        "query_id",
    ]
    for name, hint in hints.items():
        for found in ints(hint):
            assert "ge=" in repr(found) and "le=" in repr(found), (name, found)
    wide = msgspec.json.encode([{"pid": 2**64}])
    with pytest.raises(PgDoctorError, match=r"activity\[0\]\.pid should be int <= "):
        decode(list[ActivityRow], wide, "activity", ints_bounded=True)
