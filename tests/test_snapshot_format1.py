"""Format-1 snapshots are read by every later pgdoctor, with the same reports as the one that wrote them.

fixtures/format-1/*.json were written by pgdoctor 0.1.0 (snapshot format 1) on real servers and are never
regenerated: they stand for the snapshots users keep. fixtures/format-1/expected/<name>.json holds what
that pgdoctor printed for each command below with `--format json` (exit code, JSON, the error line), recorded
once by `python -m tests.test_snapshot_format1 --record` before the snapshot layout changed. A later change
that alters one of these reports on purpose (a JSON contract change, written in the README) re-records the
expected outputs in the same commit and says why; the snapshots themselves never change.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from pgdoctor.errors import PgDoctorError
from tests.conftest import FIXTURES

FORMAT_1 = FIXTURES / "format-1"
EXPECTED = FORMAT_1 / "expected"
SNAPSHOTS = sorted(FORMAT_1.glob("*.json"))
SORTS = ("total", "mean", "calls", "rows", "io", "temp", "plan")

# Every command, with the options that read a snapshot differently, on every format-1 snapshot (a
# command whose data a snapshot lacks records that error).
COMMANDS: list[list[str]] = [
    ["connections"],
    *(["connections", "--by", by] for by in ("user", "database", "client")),
    ["connections", "--idle-xact-warn", "1", "--leak-min-idle", "2", "--xmin-warn", "1"],
    ["locks"],
    ["locks", "--all"],
    ["locks", "--fast"],
    ["locks", "--min-wait", "5"],
    *(["slow-queries", "--sort", sort] for sort in SORTS),
    ["slow-queries", "-n", "60", "--running-min", "0"],
    ["slow-queries", "--database", "postgres", "--user", "postgres"],
    ["recommend", "--ram", "64GB"],
    ["recommend", "--ram", "16GB", "--cpus", "8", "--app", "w=4x2", "--workload", "oltp"],
    ["pgbouncer"],
]


def run(args: list[str], snapshot: Path) -> dict[str, Any]:
    """One command in-process on `snapshot`: exit code, JSON output, error line (the path left out)."""
    from pgdoctor.cli import app

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            result = app([*args, "--snapshot", str(snapshot), "-f", "json"], standalone_mode=False)
            code = result if isinstance(result, int) else 0
        except typer.Exit as exc:
            code = exc.exit_code
        except PgDoctorError as exc:
            code = int(exc.exit_code)
            print(f"error: {exc.message}", file=err)
    text = out.getvalue()
    return {
        "exit": code,
        "json": json.loads(text) if text.strip() else None,
        "stderr": err.getvalue().replace(str(snapshot), "<snapshot>"),
    }


def key(args: list[str]) -> str:
    return " ".join(args)


def test_the_format_1_snapshots_are_kept() -> None:
    names = [p.name for p in SNAPSHOTS]
    assert names == sorted(
        [
            "incident-pg15.json",
            "incident-pg18.json",
            "locks-pg15.json",
            "locks-pg18.json",
            "pgbouncer-pg15.json",
            "statements-pg14-1.8.json",
            "statements-pg14-1.9.json",
            "statements-pg15-1.10.json",
            "statements-pg15-1.4.json",
            "statements-pg17-1.11.json",
            "statements-pg18-1.12.json",
            "statements-pg18-not-preloaded.json",
        ]
    )
    for path in SNAPSHOTS:
        assert json.loads(path.read_text())["format_version"] == 1, path.name
        assert (EXPECTED / path.name).exists(), path.name


@pytest.mark.parametrize("snapshot", SNAPSHOTS, ids=[p.stem for p in SNAPSHOTS])
def test_format_1_gives_todays_reports(snapshot: Path) -> None:
    expected = json.loads((EXPECTED / snapshot.name).read_text())
    assert sorted(expected) == sorted(key(a) for a in COMMANDS)
    for args in COMMANDS:
        got = run(args, snapshot)
        want = expected[key(args)]
        assert got["exit"] == want["exit"], (args, got["stderr"])
        assert got["stderr"] == want["stderr"], args
        assert contains(got["json"], want["json"]), args


def contains(got: Any, want: Any) -> bool:
    """`got` says everything `want` says: the JSON contract lets later versions add fields (object
    keys), never change or drop one; lists keep their length and order."""
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and contains(got[k], v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(contains, got, want))
    return bool(got == want)


def test_contains_allows_added_fields_only() -> None:
    assert contains({"a": 1, "b": [{"c": 2, "new": 3}]}, {"a": 1, "b": [{"c": 2}]})
    assert not contains({"a": 1}, {"a": 1, "b": 2})
    assert not contains({"a": [1, 2]}, {"a": [1]})
    assert not contains({"a": {"c": 3}}, {"a": {"c": 2}})


def record() -> None:
    """Write fixtures/format-1/expected/: only with the pgdoctor that wrote the snapshots, or on purpose."""
    EXPECTED.mkdir(exist_ok=True)
    for snapshot in SNAPSHOTS:
        outputs = {key(args): run(args, snapshot) for args in COMMANDS}
        (EXPECTED / snapshot.name).write_text(json.dumps(outputs, indent=1, ensure_ascii=False) + "\n")
        print(f"recorded {EXPECTED / snapshot.name}", file=sys.stderr)


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python -m tests.test_snapshot_format1 --record")
    record()


# --- every default a snapshot may rely on is written in the README -----------------------------------


def defaulted_fields() -> dict[str, Any]:
    """JSON path -> default, for every field of a format-2 snapshot that may be missing (the PostgreSQL
    side: the pgbouncer dataset's rows default every column an older PgBouncer lacks, said in one line)."""
    import dataclasses
    import typing

    from pgdoctor.collect import DATASETS
    from pgdoctor.collect.activity import ActivityRow
    from pgdoctor.collect.server import ServerInfo
    from pgdoctor.serde import has_default
    from pgdoctor.snapshot import SHARED, dataset_type

    found: dict[str, Any] = {}

    def walk(tp: Any, path: str, skip: tuple[str, ...] = ()) -> None:
        origin = typing.get_origin(tp)
        if origin is list:
            walk(typing.get_args(tp)[0], path + "[]")
        elif origin is dict:
            walk(typing.get_args(tp)[1], path + ".*")
        elif origin is not None:  # X | None
            for arg in typing.get_args(tp):
                walk(arg, path)
        elif dataclasses.is_dataclass(tp):
            hints = typing.get_type_hints(tp)
            for f in dataclasses.fields(tp):
                if f.name in skip:
                    continue
                if has_default(f):
                    factory: Any = f.default_factory
                    found[f"{path}.{f.name}"] = f.default if factory is dataclasses.MISSING else factory()
                walk(hints[f.name], f"{path}.{f.name}")

    walk(ServerInfo, "server")
    walk(list[ActivityRow], "activity")
    for name in DATASETS:
        walk(dataset_type(name), f"datasets.{name}", SHARED)
    return found


def test_every_default_is_documented() -> None:
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("| field | when a snapshot lacks it |") :].split("\n\n")[0]
    documented = {}
    for line in section.splitlines()[2:]:
        field, default = (cell.strip() for cell in line.strip("|").split("|"))
        documented[field.strip("`")] = default.split(":")[0].strip("`")
    assert documented == {path: json.dumps(value) for path, value in defaulted_fields().items()}
