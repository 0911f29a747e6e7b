"""The built wheel carries the SQL in queries/ and the console script."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT


def test_wheel_contains_every_query_file(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("pgdoctor-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"pgdoctor/queries/{p.relative_to(ROOT / 'queries')}" for p in (ROOT / "queries").rglob("*.sql")
    }
    assert expected
    assert expected <= names
    entry_points = (
        zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    )
    assert "pgdoctor = pgdoctor.cli:main" in entry_points


def test_installed_wheel_runs_from_its_own_queries(tmp_path: Path) -> None:
    """Install the wheel into a fresh target dir and load a query from there, not from the source tree."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("pgdoctor-*.whl")
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    probe = subprocess.run(
        [sys.executable, "-c", "from pgdoctor import queries; print(queries.queries_dir())"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == str(target / "pgdoctor" / "queries")
