"""Where to connect: --dsn, DATABASE_URL, then libpq's own PG* variables, service file and .pgpass."""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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

_SCHEME = re.compile(r"^(postgres(?:ql)?)(\+[A-Za-z0-9_]+)?://", re.IGNORECASE)


def resolve_dsn(dsn: str | None) -> str:
    """The conninfo to use: --dsn, else DATABASE_URL, else "" (libpq reads PG*, service file, .pgpass)."""
    chosen = dsn if dsn else os.environ.get("DATABASE_URL", "")
    return normalize_dsn(chosen.strip())


def normalize_dsn(dsn: str) -> str:
    """Turn an SQLAlchemy URL (postgresql+psycopg2://, postgresql+asyncpg://) into a libpq URI.

    A plain libpq conninfo ("host=... dbname=...") is returned unchanged.
    """
    m = _SCHEME.match(dsn)
    if not m:
        return dsn
    parts = urlsplit("postgresql://" + dsn[m.end() :])
    query = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "ssl" and "sslmode" not in parts.query:
            # asyncpg spells it ssl=require; libpq spells it sslmode=require
            query.append(("sslmode", "require" if value.lower() in ("true", "1") else value))
        elif key in LIBPQ_PARAMS:
            query.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(query)))


_URI_PASSWORD = re.compile(r"(postgres(?:ql)?(?:\+\w+)?://[^:/@\s]*:)([^@\s]*)(@)", re.IGNORECASE)
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def password_of(dsn: str) -> str | None:
    """The password written in a DSN, if any, so it can be scrubbed from messages."""
    m = _URI_PASSWORD.search(dsn)
    if m and m.group(2):
        return m.group(2)
    m = _KV_PASSWORD.search(dsn)
    if m:
        return m.group(2).strip("'")
    return None


def redact(text: str, dsn: str = "") -> str:
    """Remove any password (from the DSN, from URIs and key=value pairs in the text) before printing."""
    secret = password_of(dsn) if dsn else None
    for known in (secret, os.environ.get("PGPASSWORD")):
        if known:
            text = text.replace(known, "****")
    text = _URI_PASSWORD.sub(r"\1****\3", text)
    return _KV_PASSWORD.sub(r"\1****", text)
