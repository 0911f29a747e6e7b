"""Where to connect: --dsn, DATABASE_URL, then libpq's own PG* variables, service file and .pgpass."""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qsl, unquote, urlsplit

from pgdoctor.errors import ExitCode, PgDoctorError

# URI query parameters libpq accepts (libpq "Parameter Key Words"); anything else makes libpq refuse
# the whole URI, and SQLAlchemy URLs often carry driver-only options.
LIBPQ_PARAMS = frozenset(
    """host hostaddr port dbname user password passfile require_auth channel_binding connect_timeout
    client_encoding options application_name fallback_application_name keepalives keepalives_idle
    keepalives_interval keepalives_count tcp_user_timeout replication gssencmode sslmode requiressl
    sslnegotiation sslcompression sslcert sslkey sslkeylogfile sslpassword sslcertmode sslrootcert
    sslcrl sslcrldir sslsni requirepeer ssl_min_protocol_version ssl_max_protocol_version krbsrvname
    gsslib gssdelegation service target_session_attrs load_balance_hosts min_protocol_version
    max_protocol_version oauth_issuer oauth_client_id oauth_client_secret oauth_scope""".split()
)

# Only SQLAlchemy URLs are rewritten: a libpq URI or conninfo goes to libpq exactly as written.
_DRIVER_URL = re.compile(r"^postgres(?:ql)?\+[A-Za-z0-9_]+://", re.IGNORECASE)


def resolve_dsn(dsn: str | None) -> str:
    """The conninfo to use: --dsn, else DATABASE_URL, else "" (libpq reads PG*, service file, .pgpass)."""
    chosen = dsn if dsn else os.environ.get("DATABASE_URL", "")
    conninfo = normalize_dsn(chosen.strip())
    check_syntax(conninfo)
    return conninfo


def check_syntax(conninfo: str) -> None:
    """libpq's own parser reads the conninfo first: a malformed one is a usage error (exit 2), not a
    connection failure, and its message never carries the password."""
    if not conninfo:
        return
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(conninfo)
    except ProgrammingError as exc:
        why = " ".join(str(exc).split())
        raise PgDoctorError(redact(f"invalid connection string: {why}", conninfo), ExitCode.USAGE) from None


def normalize_dsn(dsn: str) -> str:
    """Turn an SQLAlchemy URL (postgresql+psycopg2://, postgresql+asyncpg://) into a libpq URI.

    Anything else (a libpq URI or a "host=... dbname=..." conninfo) is returned unchanged: libpq reads
    it. Of an SQLAlchemy URL only the scheme and the query change (driver-only parameters dropped,
    asyncpg's ssl= spelt sslmode=); every other character, %-escapes included, stays as written.
    """
    if not _DRIVER_URL.match(dsn):
        return dsn
    rest = dsn[dsn.index("://") + 3 :]
    try:
        parts = urlsplit("postgresql://" + rest)
    except ValueError as exc:
        raise PgDoctorError(f"invalid connection URL: {exc}", ExitCode.USAGE) from None
    keys = [unquote(segment.partition("=")[0]) for segment in parts.query.split("&") if segment]
    query = []
    for segment in parts.query.split("&"):
        key, _, value = segment.partition("=")
        key = unquote(key)
        if key == "ssl" and "sslmode" not in keys:
            # asyncpg spells it ssl=require; libpq spells it sslmode=require
            query.append("sslmode=" + ("require" if unquote(value).lower() in ("true", "1") else value))
        elif key in LIBPQ_PARAMS:
            query.append(segment)
    netloc_path = rest.split("?", 1)[0].split("#", 1)[0]
    return "postgresql://" + netloc_path + ("?" + "&".join(query) if query else "")


# A password in a URI of any scheme (postgresql://, postgresql+asyncpg://, mysql://) in free text, and in
# key=value conninfo: masked in every message pgdoctor prints.
_URI_PASSWORD = re.compile(r"([a-z][a-z0-9+.\-]*://[^:/@\s]*:)([^@/\s]*)(@)", re.IGNORECASE)
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'?|(?:\\.|[^\s\\])+)", re.IGNORECASE)
_URI_START = re.compile(r"^[a-z][a-z0-9+.\-]*://", re.IGNORECASE)


def passwords_of(dsn: str) -> list[str]:
    """Every password written in a DSN, as written and as libpq reads it, so messages can be scrubbed."""
    found: list[str] = []
    m = _URI_START.match(dsn)
    if m:
        authority = dsn[m.end() :].split("/", 1)[0]
        userinfo = authority.rpartition("@")[0]  # the last @: more is hidden rather than less
        if ":" in userinfo:
            raw = userinfo.split(":", 1)[1]
            found += [raw, unquote(raw)]
        for key, value in parse_qsl(dsn.partition("?")[2], keep_blank_values=True):
            if key.endswith("password"):
                found.append(value)
    for kv in _KV_PASSWORD.finditer(dsn):
        raw = kv.group(2)
        inner = raw[1:-1] if raw.startswith("'") and raw.endswith("'") and len(raw) > 1 else raw.lstrip("'")
        found += [inner, raw, re.sub(r"\\(.)", r"\1", inner)]
    return [p for p in dict.fromkeys(found) if p]


def password_of(dsn: str) -> str | None:
    """The password written in a DSN, if any (as written, %-escapes and all)."""
    found = passwords_of(dsn)
    return found[0] if found else None


def redact(text: str, dsn: str = "") -> str:
    """Remove any password (from the DSN, from URIs and key=value pairs in the text) before printing."""
    known = passwords_of(dsn) if dsn else []
    env = os.environ.get("PGPASSWORD")
    if env:
        known.append(env)
    for secret in sorted(known, key=len, reverse=True):  # longest first: no tail of one is left
        text = text.replace(secret, "****")
    text = _URI_PASSWORD.sub(r"\1****\3", text)
    return _KV_PASSWORD.sub(r"\1****", text)
