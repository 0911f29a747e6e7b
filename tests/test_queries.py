"""The SQL files: picked by version, every file used, every referenced name present."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import pgdoctor.collect
from pgdoctor import queries
from pgdoctor.errors import PgDoctorError


def referenced() -> dict[str, set[queries.Version]]:
    """Every query name a collector declares (module-level QUERIES), with the versions it is used for."""
    names: dict[str, set[queries.Version]] = {}
    for info in pkgutil.iter_modules(pgdoctor.collect.__path__):
        module = importlib.import_module(f"pgdoctor.collect.{info.name}")
        for name, versions in getattr(module, "QUERIES", {}).items():
            names.setdefault(name, set()).update(versions)
    return names


def test_every_referenced_query_exists_for_every_version_it_is_used_for() -> None:
    for name, versions in referenced().items():
        for version in versions:
            assert queries.pick(name, version).is_file(), (name, version)


def test_every_query_file_is_used() -> None:
    used = {queries.pick(name, v) for name, versions in referenced().items() for v in versions}
    on_disk = set(queries.queries_dir().glob("*/*.sql"))
    assert on_disk, "no query files found"
    assert on_disk - used == set(), "files no supported version ever picks"


def test_highest_minimum_that_fits_wins() -> None:
    assert queries.pick("activity", (13, 12)).name == "13.sql"
    assert queries.pick("activity", (14, 0)).name == "14.sql"
    assert queries.pick("activity", (18, 1)).name == "14.sql"
    with pytest.raises(PgDoctorError, match="not supported"):
        queries.pick("activity", (12, 0))


def test_server_version_num() -> None:
    assert queries.server_version(150018) == (15, 18)
    assert queries.server_version(180006) == (18, 6)
    assert queries.server_version(90624) == (9, 6, 24)


def test_query_files_are_sql_with_a_comment(tmp_path: Path) -> None:
    for path in queries.queries_dir().glob("*/*.sql"):
        text = path.read_text()
        assert text.startswith("--"), f"{path} should open with a comment saying what it returns"
