"""The PostgreSQL 18 binaries run as the postgres user from a checkout that user cannot read.

A virtualenv in a 0700 directory (root's home, a `mktemp -d`) makes tests.pgcluster copy the wheel's
install somewhere readable. This test builds that copy in a directory of its own, whatever the venv's
mode on this machine, so the copy path is exercised on every machine, not only on one like CI's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pgcluster import COMPLETE, RUN_AS, copy_name, readable_copy, wheel_install


def _run_as_server_user(binary: Path) -> subprocess.CompletedProcess[str]:
    cmd = [str(binary), "--version"]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", RUN_AS, "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


@pytest.fixture
def readable_tmp() -> Iterator[Path]:
    """A fresh directory the server user can pass through (pytest's own tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="pgdoctor-copy-test-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_copy_finds_its_libraries_and_redoes_a_half_made_copy(readable_tmp: Path) -> None:
    install = wheel_install()
    # an earlier run interrupted mid-copy left binaries without their libraries and without the mark
    name = copy_name(install)
    half = readable_tmp / name / install.parent.name / install.name / "bin"
    half.mkdir(parents=True)
    shutil.copy2(install / "bin" / "initdb", half / "initdb")
    copied = readable_copy(install, top=readable_tmp)
    assert copied == readable_tmp / name / install.parent.name / install.name
    assert (readable_tmp / name / COMPLETE).exists()
    for binary in ("initdb", "postgres", "pg_ctl"):
        result = _run_as_server_user(copied / "bin" / binary)
        assert result.returncode == 0, result.stderr
        assert "18." in result.stdout
    # a complete copy is reused as it is
    marker = readable_tmp / name / COMPLETE
    before = marker.stat().st_mtime_ns
    assert readable_copy(install, top=readable_tmp) == copied
    assert marker.stat().st_mtime_ns == before
    assert not [p for p in readable_tmp.iterdir() if p.name.startswith("pgdoctor-pg18-partial-")]
