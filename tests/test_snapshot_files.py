"""Bad --snapshot files: one clear line, exit 2, no traceback, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, run_cli

GOOD = FIXTURES / "incident-pg15.json"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"format": "pgdoctor-snapshot", "format_version": 1, "datasets": {"conn', "not valid JSON"),
        ("\x00\x01garbage", "not valid JSON"),
        ('{"hello": "world"}', "not a pgdoctor snapshot"),
        ("[1, 2, 3]", "not a pgdoctor snapshot"),
        ('{"format": "pgdoctor-snapshot", "format_version": 99, "datasets": {}}', "newer than this pgdoctor"),
        ('{"format": "pgdoctor-snapshot", "format_version": 1, "datasets": {}}', "has no 'connections' data"),
        (
            '{"format": "pgdoctor-snapshot", "format_version": 1, '
            '"datasets": {"connections": {"server": 3}}}',
            "invalid snapshot",
        ),
    ],
)
def test_bad_snapshot(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    before = sorted(tmp_path.iterdir())
    result = run_cli("connections", "--snapshot", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert sorted(tmp_path.iterdir()) == before


def test_truncated_real_snapshot(tmp_path: Path) -> None:
    text = GOOD.read_text()
    path = tmp_path / "cut.json"
    path.write_text(text[: len(text) // 2])
    result = run_cli("connections", "--snapshot", str(path))
    assert result.returncode == 2
    assert "not valid JSON" in result.stderr


def test_wrong_type_inside_a_real_snapshot(tmp_path: Path) -> None:
    doc = json.loads(GOOD.read_text())
    doc["activity"][0]["pid"] = "not-a-pid"
    path = tmp_path / "typed.json"
    path.write_text(json.dumps(doc))
    result = run_cli("connections", "--snapshot", str(path))
    assert result.returncode == 2
    assert "activity[0].pid should be int" in result.stderr


def test_snapshot_and_dsn_together_is_usage_error() -> None:
    result = run_cli("connections", "--snapshot", str(GOOD), "-d", "host=x")
    assert result.returncode == 2
    assert "either --dsn or --snapshot" in result.stderr


def test_snapshot_file_gets_ordinary_permissions(tmp_path: Path) -> None:
    import os

    from pgdoctor.snapshot import save

    target = tmp_path / "snap.json"
    save({"format": "pgdoctor-snapshot", "format_version": 1, "datasets": {}}, target)
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["snap.json"]  # no temp file left behind
