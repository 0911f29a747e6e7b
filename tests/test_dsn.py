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
        # a libpq URI or conninfo is libpq's to read, character for character
        ("postgres://app@db/prod", "postgres://app@db/prod"),
        ("postgresql:///postgres?host=/sock", "postgresql:///postgres?host=/sock"),
        ("postgresql://?service=x", "postgresql://?service=x"),
        (
            "postgresql://h/db?options=-c%20search_path%3Dapp",
            "postgresql://h/db?options=-c%20search_path%3Dapp",
        ),
        ("postgresql://[::1", "postgresql://[::1"),
        # of an SQLAlchemy URL only the scheme and the driver's parameters change; %20 stays %20
        (
            "postgresql+psycopg2://app@db/prod?options=-c%20search_path%3Dapp&pool_size=5",
            "postgresql://app@db/prod?options=-c%20search_path%3Dapp",
        ),
        ("postgresql+psycopg2:///prod?host=/run/pg", "postgresql:///prod?host=/run/pg"),
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


# --- hostile or unusual DSNs (issue 10) ---------------------------------------------------------------

from urllib.parse import quote  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.conftest import run_cli  # noqa: E402
from tests.pgcluster import Cluster  # noqa: E402


@pytest.mark.parametrize(
    ("dsn", "secret"),
    [
        ("mysql://user:MyPw9x@localhost/db", "MyPw9x"),
        ("postgresql://u:Sp ace9x@localhost/db", "Sp ace9x"),
        ("postgresql://u:Pc%25t9x@localhost:1/db", "Pc%25t9x"),
        ("host=localhost port=1 password='Qu\\'ot e9x' user=u", "Qu\\'ot e9x"),
        ("postgresql+asyncpg://u:Dr1ver9x@[::1/db", "Dr1ver9x"),
        ("postgresql://u:Ipv6pw9x@[::1", "Ipv6pw9x"),
    ],
)
def test_no_password_printed_whatever_the_dsn(dsn: str, secret: str) -> None:
    result = run_cli("connections", "--dsn", dsn, "--timeout", "2")
    assert result.returncode in (2, 3), result.stderr
    for shown in (
        secret,
        secret.replace("%25", "%"),
        secret.replace("\\'", "'"),
        secret.split(maxsplit=1)[0],
    ):
        assert shown not in result.stdout + result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr


@pytest.mark.parametrize("dsn", ["postgresql://[::1", "postgresql+asyncpg://[::1/db"])
def test_malformed_uri_is_one_line_exit_2(dsn: str) -> None:
    result = run_cli("connections", "--dsn", dsn)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_libpq_uris_reach_libpq_untouched(pg: Cluster) -> None:
    """URIs psql accepts: a socket directory as host=, %20 in options, and postgres:// itself."""
    sock = quote(str(pg.socket_dir), safe="")
    for dsn in (
        f"postgresql:///postgres?host={pg.socket_dir}&port={pg.port}&user=postgres",
        f"postgresql://postgres@{sock}:{pg.port}/postgres?options=-c%20search_path%3Dpublic",
        f"postgres://postgres@{sock}:{pg.port}/postgres",
        f"postgresql+psycopg2://postgres@/postgres?host={sock}&port={pg.port}&options=-c%20work_mem%3D5MB&pool_size=3",
    ):
        result = run_cli("connections", "--dsn", dsn, "-f", "json")
        assert result.returncode == 0, (dsn, result.stderr)


def test_service_uri_is_accepted(pg: Cluster, tmp_path: pytest.TempPathFactory) -> None:
    service_file = tmp_path / "pg_service.conf"  # type: ignore[operator]
    service_file.write_text(f"[x]\nhost={pg.socket_dir}\nport={pg.port}\nuser=postgres\ndbname=postgres\n")
    result = run_cli("connections", "--dsn", "postgresql://?service=x", "-f", "json",
                     env={"PGSERVICEFILE": str(service_file)})  # fmt: skip
    assert result.returncode == 0, result.stderr


_USER = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=8)
_PASSWORD = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00", exclude_categories=["Cs"]),
    min_size=4,
    max_size=24,
).filter(lambda p: p.strip("*") != "" and p == p.strip())


@settings(max_examples=400, deadline=None)
@given(user=_USER, password=_PASSWORD, form=st.sampled_from(["uri", "sqlalchemy", "mysql", "kv", "kv_bare"]))
def test_redact_hides_any_password(user: str, password: str, form: str) -> None:
    encoded = quote(password, safe="")
    if form == "uri":
        dsn = f"postgresql://{user}:{encoded}@db.example:5432/prod?sslmode=require"
    elif form == "sqlalchemy":
        dsn = f"postgresql+asyncpg://{user}:{encoded}@db.example/prod?ssl=true"
    elif form == "mysql":
        dsn = f"mysql://{user}:{encoded}@db.example/prod"
    elif form == "kv":
        escaped = password.replace("\\", "\\\\").replace("'", "\\'")
        dsn = f"host=db.example user={user} password='{escaped}' dbname=prod"
    else:
        escaped = "".join("\\" + c if c in "\\' \t\n\r\f\v" or c.isspace() else c for c in password)
        dsn = f"host=db.example user={user} password={escaped} dbname=prod"
    message = f"could not connect with {dsn} ({normalize_dsn(dsn)}): password {password} refused"
    shown = redact(message, dsn)
    assert password not in shown
    assert encoded not in shown
    if form in ("uri", "sqlalchemy", "mysql") and encoded.strip("*"):
        # with no DSN to learn the password from, a URI's is still masked
        assert f":{encoded}@" not in redact(f"failed: {dsn}")
