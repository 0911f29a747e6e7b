"""Safe against what other roles put on the server: look-alike functions and operators, bytes in any
encoding, a stopped backend, idle_session_timeout, and pgdoctor's own footprint in pg_stat_statements."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import pq

from pgdoctor.errors import ExitCode
from tests.conftest import ROOT, run_cli
from tests.incidents import Sessions, ensure_role, wait_until
from tests.pgcluster import Cluster

pytestmark = pytest.mark.server
PGDOCTOR = [sys.executable, "-m", "pgdoctor"]


def commands(tmp: Path) -> list[list[str]]:
    """Every command that reads a live server."""
    return [
        ["connections", "-f", "json", "--sessions"],
        ["locks", "--all", "-f", "json"],
        ["slow-queries", "-f", "json"],
        ["slow-queries", "-f", "json", "--interval", "0.2"],
        ["recommend", "--ram", "4GB", "-f", "json"],
        ["snapshot", "-o", str(tmp / "snap.json")],
    ]


# ---------------------------------------------------------------------------------------------------
# look-alike functions and operators

HIJACK_DB = "hijack"
MALLORY = "mallory"
# Look-alikes of what pgdoctor's statements call, with signatures that win overload resolution (or tie
# with pg_catalog's, which a search_path that lists pg_catalog late lets win).
FUNCTIONS = [
    ("pg_has_role", "name, text, text", "boolean", "true"),
    ("pg_backend_pid", "", "integer", "0"),
    ("current_database", "", "name", "'postgres'::name"),
    ("host", "inet", "text", "'x'"),
    ("age", "xid", "integer", "0"),
    ("quote_ident", "text", "text", "'public'"),
    ("strpos", "text, text", "integer", "0"),
    ("statement_timestamp", "", "timestamptz", "now()"),
    ("pg_blocking_pids", "integer", "integer[]", "'{}'::integer[]"),
    ("set_config", "text, text, boolean", "text", "''"),
    ("pg_stat_statements", "boolean", "SETOF record", None),
]
OPERATORS = [
    ("=", "text", "text"),
    ("<>", "integer", "integer"),
    ("=", "name", "name"),
    (">", "bigint", "bigint"),
]


def plant(pg: Cluster, schema: str) -> None:
    """Functions and operators in `schema` that leave a trace when they run: a WARNING in the server log
    (written whatever the transaction) and, when they may, a row in public.hijack_log."""
    sql = [f"SET ROLE {MALLORY}"]
    for name, args, returns, value in FUNCTIONS:
        if schema == "public" and name == "pg_stat_statements":
            continue  # the real one lives there
        if value is None:
            body = f"RAISE WARNING 'pgdoctor-hijack {schema}.{name}'; RETURN;"
        else:
            body = (
                f"RAISE WARNING 'pgdoctor-hijack {schema}.{name}'; "
                f"BEGIN INSERT INTO public.hijack_log VALUES ('{schema}.{name}'); "
                "EXCEPTION WHEN OTHERS THEN NULL; END; "
                f"RETURN {value};"
            )
        sql.append(
            f"CREATE FUNCTION {schema}.{name}({args}) RETURNS {returns} LANGUAGE plpgsql "
            f"SET search_path = pg_catalog AS $$BEGIN {body} END$$"
        )
    for i, (op, left, right) in enumerate(OPERATORS):
        func = f"{schema}.hijack_op{i}"
        sql.append(
            f"CREATE FUNCTION {func}(a {left}, b {right}) RETURNS boolean LANGUAGE plpgsql "
            f"SET search_path = pg_catalog AS $$BEGIN RAISE WARNING 'pgdoctor-hijack {schema} {op}'; "
            f"BEGIN INSERT INTO public.hijack_log VALUES ('{schema} {op}'); EXCEPTION WHEN OTHERS THEN NULL; "
            f"END; RETURN a OPERATOR(pg_catalog.{op}) b; END$$"
        )
        sql.append(f"CREATE OPERATOR {schema}.{op} (LEFTARG = {left}, RIGHTARG = {right}, FUNCTION = {func})")
    sql.append("RESET ROLE")
    pg.sql("; ".join(sql), dbname=HIJACK_DB)


@pytest.fixture
def hijacked(pg: Cluster) -> Iterator[Cluster]:
    """A database where `mallory`, a plain role, may create objects in public (as every role could before
    PostgreSQL 15, and a database owner can) and owns a schema named after the superuser, which the
    default search_path ("$user", public) puts first; its search_path lists pg_catalog last."""
    pg.sql(f"DROP DATABASE IF EXISTS {HIJACK_DB} WITH (FORCE)")
    ensure_role(pg, MALLORY)
    pg.sql(f"CREATE DATABASE {HIJACK_DB} OWNER {MALLORY}")
    pg.sql(
        "CREATE EXTENSION pg_stat_statements; "
        f"GRANT CREATE ON SCHEMA public TO {MALLORY}; "
        f"CREATE SCHEMA postgres AUTHORIZATION {MALLORY}; "
        "CREATE TABLE public.hijack_log (what text); GRANT INSERT ON public.hijack_log TO PUBLIC; "
        "CREATE TABLE public.busy (id int)",
        dbname=HIJACK_DB,
    )
    pg.sql(f'ALTER DATABASE {HIJACK_DB} SET search_path = "$user", public, pg_catalog')
    plant(pg, "public")
    plant(pg, "postgres")
    try:
        yield pg
    finally:
        pg.terminate_others()
        pg.sql(f"DROP DATABASE IF EXISTS {HIJACK_DB} WITH (FORCE)")


def log_size(pg: Cluster) -> int:
    return (pg.base / "log").stat().st_size


def hijack_traces(pg: Cluster, since: int) -> str:
    with (pg.base / "log").open("rb") as log:
        log.seek(since)
        text = log.read().decode("utf-8", "replace")
    return "\n".join(line for line in text.splitlines() if "pgdoctor-hijack" in line)


def test_look_alike_functions_and_operators_never_run(hijacked: Cluster, tmp_path: Path) -> None:
    pg = hijacked
    sessions = Sessions(pg)
    try:
        # someone holds a lock and someone waits for it, so locks reads pg_blocking_pids() too
        holder = sessions.open("holder", dbname=HIJACK_DB)
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE public.busy IN ACCESS EXCLUSIVE MODE")
        sessions.send("waiter", "SELECT count(*) FROM public.busy", dbname=HIJACK_DB)
        sessions.idle("web", 2, dbname=HIJACK_DB)
        # the premise: an ordinary session of this database does run them
        start = log_size(pg)
        pg.sql("SELECT pg_has_role(current_user, 'pg_read_all_stats', 'USAGE'), 1 <> 2", dbname=HIJACK_DB)
        premise = hijack_traces(pg, start)
        assert "public.pg_has_role" in premise or "postgres.pg_has_role" in premise, premise
        assert " <>" in premise, premise
        pg.sql("TRUNCATE public.hijack_log", dbname=HIJACK_DB)
        start = log_size(pg)
        for args in commands(tmp_path):
            result = run_cli(*args, "-d", pg.dsn(dbname=HIJACK_DB))
            assert result.returncode in (0, 1), (args, result.stderr)
        assert hijack_traces(pg, start) == ""
        assert pg.sql("SELECT what FROM public.hijack_log", dbname=HIJACK_DB) == []
        assert pg.sql(f"SELECT rolsuper FROM pg_roles WHERE rolname = '{MALLORY}'") == [(False,)]
    finally:
        sessions.close()


# ---------------------------------------------------------------------------------------------------
# bytes in any encoding

ENCODINGS = {"latin1": "LATIN1", "sqlascii": "SQL_ASCII", "eucjp": "EUC_JP"}
EMOJI = "\U0001f600"


@pytest.fixture
def encoded(pg: Cluster) -> Iterator[tuple[Cluster, list[pq.abc.PGconn]]]:
    """Databases in LATIN1, SQL_ASCII and EUC_JP, and idle sessions in them (and in the UTF8 postgres
    database) whose last query holds é, the byte \\xff, an emoji or a kana: each in the bytes of the
    database it ran in, which is how pg_stat_activity shows them to every other database."""
    for db, enc in ENCODINGS.items():
        pg.sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        pg.sql(f"CREATE DATABASE {db} ENCODING '{enc}' LOCALE 'C' TEMPLATE template0")
        pg.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", dbname=db)
    texts: list[tuple[str, str, bytes]] = [
        ("latin1", "LATIN1", "SELECT 'café latin1'".encode("latin-1")),
        ("sqlascii", "SQL_ASCII", b"SELECT 'raw \xff byte'"),
        ("sqlascii", "SQL_ASCII", f"SELECT 'emoji {EMOJI} in sql_ascii'".encode()),
        ("eucjp", "EUC_JP", "SELECT 'かな eucjp'".encode("euc_jp")),
        ("postgres", "UTF8", f"SELECT 'utf8 café {EMOJI}'".encode()),
    ]
    conns = []
    for db, client_encoding, statement in texts:
        conn = pq.PGconn.connect(pg.dsn(dbname=db, client_encoding=client_encoding).encode())
        assert conn.status == pq.ConnStatus.OK, conn.get_error_message()
        result = conn.exec_(statement)
        assert result.status == pq.ExecStatus.TUPLES_OK, result.get_error_message()
        conns.append(conn)
    try:
        yield pg, conns
    finally:
        for conn in conns:
            conn.finish()
        pg.terminate_others()
        for db in ENCODINGS:
            pg.sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


@pytest.mark.parametrize("dbname", ["postgres", *ENCODINGS])
def test_any_encoding_gives_a_correct_report(
    encoded: tuple[Cluster, list[pq.abc.PGconn]], dbname: str, tmp_path: Path
) -> None:
    pg, conns = encoded
    pids = {c.backend_pid for c in conns}
    # a client encoding set every way but pgdoctor's own: the environment, the DSN and the role
    env = {"PGCLIENTENCODING": "LATIN1"}
    pg.sql("ALTER ROLE postgres SET client_encoding = 'WIN1252'")
    try:
        for args in commands(tmp_path):
            dsn = pg.dsn(dbname=dbname, client_encoding="EUC_JP")
            result = run_cli(*args, "-d", dsn, env=env)
            assert result.returncode in (0, 1), (args, result.stderr)
            if args[0] == "connections":
                doc = json.loads(result.stdout)
                assert doc["capacity"]["max_connections"] == 100
                assert doc["capacity"]["clients"] == len(pids)
                by_pid = {s["pid"]: s for s in doc["sessions"]}
                assert pids <= set(by_pid)
                assert all(by_pid[p]["class"] == "idle" for p in pids)
                queries = " ".join(by_pid[p]["query"] for p in pids)
                # every session is there, whatever its bytes; undecodable ones escaped, never dropped
                assert "latin1" in queries and "raw " in queries and "eucjp" in queries
                if dbname in ("postgres", "sqlascii"):  # bytes reach pgdoctor as they were sent
                    assert "raw \\xff byte" in queries and EMOJI in queries
            if args[0] == "slow-queries":
                assert json.loads(result.stdout)["available"] is True
        for fmt in ("table", "plain", "markdown", "csv"):
            result = run_cli("connections", "--sessions", "--full", "-f", fmt, "-d", pg.dsn(dbname=dbname))
            assert result.returncode in (0, 1), (fmt, result.stderr)
    finally:
        pg.sql("ALTER ROLE postgres RESET client_encoding")


# ---------------------------------------------------------------------------------------------------
# a stopped backend, idle_session_timeout


def test_a_stopped_backend_ends_the_run_within_the_timeout(pg: Cluster) -> None:
    """SIGSTOP pgdoctor's backend during --interval: statement_timeout cannot fire in a stopped process;
    pgdoctor's own deadline ends the run."""
    proc = subprocess.Popen(
        [*PGDOCTOR, "slow-queries", "-d", pg.dsn(), "--interval", "3", "--timeout", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    started = time.monotonic()
    backend: list[int] = []

    def first_read_done() -> bool:
        rows = pg.sql(
            "SELECT pid FROM pg_stat_activity WHERE strpos(query, '/* pgdoctor */') > 0 "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        backend[:] = [r[0] for r in rows]
        return len(backend) == 1

    try:
        wait_until(first_read_done, timeout=20, what="pgdoctor's backend")
        os.kill(backend[0], signal.SIGSTOP)
        out, err = proc.communicate(timeout=60)
        elapsed = time.monotonic() - started
    finally:
        if backend:
            os.kill(backend[0], signal.SIGCONT)
        proc.kill()
    assert proc.returncode == ExitCode.QUERY_FAILED, err
    assert err.startswith("error: no answer from the server within --timeout 2s") and err.count("\n") == 1
    # interval 3 s + timeout 2 s + margin 1 s, + the interpreter's start and the first read (generous)
    assert elapsed < 3 + 2 + 1 + 6, elapsed
    assert out == ""


def test_the_session_survives_idle_session_timeout(pg: Cluster) -> None:
    """idle_session_timeout (PostgreSQL 14+) set on pgdoctor's role: the session outlives --interval."""
    ensure_role(pg, "idler")
    pg.sql("GRANT pg_monitor TO idler")
    pg.sql("ALTER ROLE idler SET idle_session_timeout = '1s'")
    try:
        # the premise: a session of this role that idles 2 s is ended by the server
        conn = pq.PGconn.connect(pg.dsn(user="idler").encode())
        time.sleep(2)
        assert conn.exec_(b"SELECT 1").status != pq.ExecStatus.TUPLES_OK
        conn.finish()
        result = run_cli("slow-queries", "-d", pg.dsn(user="idler"), "-f", "json", "--interval", "3")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["interval_s"] == 3.0
    finally:
        pg.sql("ALTER ROLE idler RESET idle_session_timeout")


# ---------------------------------------------------------------------------------------------------
# pgdoctor's footprint in pg_stat_statements


def test_few_stable_statements_without_comment_blocks(
    pg: Cluster, sessions: Sessions, tmp_path: Path
) -> None:
    sessions.idle("web", 2)
    pg.sql("SELECT pg_stat_statements_reset()")
    for timeout in ("2", "3"):  # literal options vary between runs; the statements must not
        for args in commands(tmp_path):
            result = run_cli(*args, "-d", pg.dsn(), "--timeout", timeout)
            assert result.returncode in (0, 1), (args, result.stderr)
        for sort in ("mean", "calls", "io"):
            result = run_cli("slow-queries", "--sort", sort, "-d", pg.dsn(), "--timeout", timeout)
            assert result.returncode in (0, 1), result.stderr
    own = pg.sql(
        "SELECT queryid, query FROM pg_stat_statements WHERE strpos(query, '/* pgdoctor */') > 0 "
        "AND query NOT LIKE '%pg_stat_statements_reset%'"
    )
    # one entry per statement pgdoctor sends: the per-read settings, the role, the settings (two files),
    # activity, locks (three files), the extension, the top statements (cumulative and over an
    # interval), the baseline, the info view, what runs now, and the keep-alive read of a long
    # --interval: 15 at most, whatever was run how often
    assert 0 < len(own) <= 15, [q for _, q in own]
    assert len({queryid for queryid, _ in own}) == len(own)
    for _, query in own:
        assert "--" not in query, query
        assert query.count("/*") == query.count("/* pgdoctor */") + query.count("/*, ... */"), query
