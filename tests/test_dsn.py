"""Connection strings: SQLAlchemy URLs normalised for libpq, passwords never shown."""

from __future__ import annotations

import pytest

from pgdoctor.dsn import normalize_dsn, password_of, redact, resolve_dsn


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql+psycopg2://app:pw@db:5432/prod", "postgresql://app:pw@db:5432/prod"),
        ("postgresql+asyncpg://app:pw@db/prod?ssl=require", "postgresql://app:pw@db/prod?sslmode=require"),
        ("postgresql+asyncpg://app@db/prod?ssl=true", "postgresql://app@db/prod?sslmode=require"),
        (
            "postgresql+psycopg://app@db/prod?connect_timeout=3&pool_size=5",
            "postgresql://app@db/prod?connect_timeout=3",
        ),
        ("postgres://app@db/prod", "postgresql://app@db/prod"),
        ("host=db dbname=prod user=app", "host=db dbname=prod user=app"),
        ("", ""),
    ],
)
def test_normalize(given: str, expected: str) -> None:
    assert normalize_dsn(given) == expected


def test_resolve_prefers_flag_then_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg2://env@h/d")
    assert resolve_dsn("host=flag") == "host=flag"
    assert resolve_dsn(None) == "postgresql://env@h/d"
    monkeypatch.delenv("DATABASE_URL")
    assert resolve_dsn(None) == ""  # libpq then reads PG* variables, the service file and .pgpass


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://app:s3cr%40t@db/prod",
        "postgresql+asyncpg://app:s3cr%40t@db/prod",
        "host=db password=s3cr%40t user=app",
        "host=db password='s3cr%40t' user=app",
    ],
)
def test_redact(dsn: str) -> None:
    assert password_of(dsn) == "s3cr%40t"
    shown = redact(f"could not connect with {dsn}", dsn)
    assert "s3cr" not in shown
    assert "****" in shown


def test_redact_without_dsn_still_scrubs_uris() -> None:
    assert "hunter2" not in redact("failed: postgresql://u:hunter2@h/db")
