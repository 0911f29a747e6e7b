"""`--watch` against real servers: pgdoctor runs as a separate process, in a pipe (one line or one JSON
document per tick) and on a real terminal (tmux: the live screen, Ctrl-C sent as a key), while sessions
are opened and closed, a lock blocker comes and goes, and clients queue in a real PgBouncer. Ctrl-C (SIGINT)
ends it with exit 0 and its one connection gone from the server.

Every wait is a condition polled under a generous deadline (the machine may be slow and busy); intervals
are 0.5-1 s, so a test sees a handful of ticks.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg import pq

from tests.conftest import NO_CONFIG, ROOT
from tests.incidents import Sessions, wait_for_lock_waits
from tests.pgbouncer import PgBouncer, available, running_pgbouncer
from tests.pgcluster import Cluster

pytestmark = pytest.mark.server

DEADLINE_S = 60.0  # for any one condition: generous, the machine is shared
OWN = "SELECT pid FROM pg_stat_activity WHERE query LIKE '%/* pgdoctor */%' AND pid <> pg_backend_pid()"


def env() -> dict[str, str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "COLUMNS": "200", **NO_CONFIG}
    full.pop("DATABASE_URL", None)
    for name in [n for n in full if n.startswith("PGDOCTOR_")]:
        del full[name]
    return full


def poll(check: Callable[[], Any], what: str, limit: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + limit
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def pgdoctor_pids(pg: Cluster) -> list[int]:
    """pgdoctor's backends on the server: their last statement carries its marker."""
    return [int(r[0]) for r in pg.sql(OWN)]


class Watching:
    """`pgdoctor … --watch` in a pipe: its lines collected by a thread as they come."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pgdoctor", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(),
        )
        self.lines: list[str] = []
        self.fresh: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self.fresh.put(line)

    def line(self, predicate: Callable[[str], bool], what: str, after: int = 0) -> tuple[int, str]:
        """The first line from index `after` on that satisfies `predicate` (waiting for it)."""

        def found() -> tuple[int, str] | None:
            if self.proc.poll() is not None and self.fresh.empty():
                assert self.proc.stderr is not None
                raise AssertionError(f"pgdoctor ended ({self.proc.returncode}): {self.proc.stderr.read()}")
            for i, text in enumerate(self.lines[after:], start=after):
                if predicate(text):
                    return i, text
            return None

        result: tuple[int, str] = poll(found, what)
        return result

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C: SIGINT, as a terminal sends it; the exit status and stderr."""
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=DEADLINE_S)
        self.reader.join(10)
        return self.proc.returncode, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=DEADLINE_S)


@pytest.fixture
def watching() -> Iterator[Callable[..., Watching]]:
    started: list[Watching] = []

    def start(*args: str) -> Watching:
        started.append(Watching(*args))
        return started[-1]

    yield start
    for w in started:
        w.kill()


def stopped_cleanly(pg: Cluster, w: Watching, own_pid: int) -> None:
    """Ctrl-C: exit 0, nothing on stderr, pgdoctor's connection gone from the server."""
    code, err = w.interrupt()
    assert code == 0, err
    assert err == "", err
    poll(lambda: own_pid not in pgdoctor_pids(pg), "pgdoctor's backend to go")


_APP = r"{app}=(\d+) \(([+-]\d+), ([+-]\d+) since start\)"


def counted(line: str, app: str) -> tuple[int, int, int] | None:
    """(now, since last tick, since start) of `app` in a summary line, if it moved."""
    m = re.search(_APP.format(app=re.escape(app)), line)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def test_connections_in_a_pipe_slots_taken_then_freed(
    pg: Cluster, sessions: Sessions, watching: Callable[..., Watching]
) -> None:
    app = f"watch-{uuid.uuid4().hex[:6]}"
    sessions.idle("bystander", 1)
    w = watching("connections", "--watch", "0.5", "-d", pg.dsn())
    first, line = w.line(lambda t: " connections tick 1 |" in t, "the first tick")
    assert re.search(r"used/usable \d+/\d+ \(\+0, \+0 since start\)", line), line
    own = poll(lambda: pgdoctor_pids(pg), "pgdoctor's backend")
    assert len(own) == 1
    # three sessions of one application: slots taken
    opened = [sessions.open(app) for _ in range(3)]
    for conn in opened:
        conn.execute("SELECT 1")
    taken, line = w.line(lambda t: (counted(t, app) or (0,))[0] == 3, "3 slots taken by the app", first)
    before = [counted(t, app) for t in w.lines[first : taken + 1]]
    assert all(c is None or c[1] >= 0 for c in before), before  # only taken, never freed, so far
    assert sum(c[1] for c in before if c) == 3 and counted(line, app) is not None
    assert (counted(line, app) or (0, 0, 0))[2] == 3  # +3 since start
    # two of them close: slots freed, for that application
    for conn in opened[:2]:
        conn.close()
    freed, line = w.line(lambda t: (counted(t, app) or (9,))[0] == 1, "2 slots freed", taken + 1)
    after = [counted(t, app) for t in w.lines[taken + 1 : freed + 1]]
    assert sum(c[1] for c in after if c) == -2 and all(c is None or c[1] <= 0 for c in after), after
    assert (counted(line, app) or (0, 0, 0))[2] == 1  # +1 since start
    # the other application never moved: never in a line
    assert not any(counted(t, "bystander") for t in w.lines)
    # each tick a line, numbered, and on the one connection throughout
    ticks = [int(m.group(1)) for t in w.lines if (m := re.search(r" tick (\d+) \|", t))]
    assert ticks == list(range(1, len(ticks) + 1))
    assert pgdoctor_pids(pg) == own
    stopped_cleanly(pg, w, own[0])


def test_connections_json_lines(pg: Cluster, sessions: Sessions, watching: Callable[..., Watching]) -> None:
    app = f"json-{uuid.uuid4().hex[:6]}"
    w = watching("connections", "--watch", "0.5", "-d", pg.dsn(), "-f", "json")
    w.line(lambda t: True, "the first JSON line")
    own = poll(lambda: pgdoctor_pids(pg), "pgdoctor's backend")
    sessions.idle(app, 2)
    n, _ = w.line(lambda t: f'"key": "{app}", "total": 2' in t, "the app's 2 sessions")
    w.line(lambda t: True, "one more tick", n + 1)
    docs = [json.loads(t) for t in w.lines]  # every line is one JSON document
    stopped_cleanly(pg, w, own[0])
    assert [d["watch"]["tick"] for d in docs] == list(range(1, len(docs) + 1))
    for d in docs:  # the command's own JSON, plus the watch object
        assert d["command"] == "connections" and {"capacity", "groups", "findings"} <= set(d)
        assert d["watch"]["interval_s"] == 0.5 and d["watch"]["counts_of"] == "application"
    moved = [c for d in docs for c in d["watch"]["counts"] if c["key"] == app and c["since_last"]]
    assert sum(c["since_last"] for c in moved) == 2 and moved[-1]["since_start"] == 2
    used = docs[n]["watch"]["totals"]["used"]
    assert used["now"] == docs[n]["capacity"]["clients"] and used["since_start"] >= 2


def test_locks_in_a_pipe_a_blocker_appears_and_ends(
    pg: Cluster, sessions: Sessions, watching: Callable[..., Watching]
) -> None:
    table = f"watched_{uuid.uuid4().hex[:6]}"
    pg.sql(f"CREATE TABLE {table} (id int)")
    try:
        w = watching("locks", "--watch", "0.5", "-d", pg.dsn())
        first, _ = w.line(lambda t: " locks tick 1 |" in t, "the first tick")
        own = poll(lambda: pgdoctor_pids(pg), "pgdoctor's backend")
        holder = sessions.open("holder")
        holder.execute("BEGIN")
        holder.execute(f"LOCK TABLE {table}".encode())
        blocker = holder.info.backend_pid
        waiter = sessions.send("waiter", f"SELECT count(*) FROM {table}")
        wait_for_lock_waits(pg, [waiter], timeout=DEADLINE_S)
        new, line = w.line(lambda t: f"new: pid {blocker} (holder" in t, "the new blocker", first)
        assert "blockers=1 (+1, +1 since start)" in line, line
        assert re.search(rf"pid {blocker}=1 \(\+1, \+1 since start\)", line), line
        holder.execute("COMMIT")  # the blocker ends its transaction: the waiter gets its lock
        _, line = w.line(lambda t: f"ended: pid {blocker}" in t, "the blocker to end", new + 1)
        assert "blockers=0 (-1, +0 since start)" in line, line
        assert pgdoctor_pids(pg) == own
        stopped_cleanly(pg, w, own[0])
    finally:
        sessions.close()
        pg.sql(f"DROP TABLE {table}")


@pytest.fixture
def bouncer(pg: Cluster) -> Iterator[PgBouncer]:
    if not available():
        pytest.skip("PgBouncer is not installed (apt-get install pgbouncer)")
    with running_pgbouncer(pg, pool_size=1) as b:
        yield b


def test_pgbouncer_in_a_pipe_clients_waiting_appear_and_drain(
    pg: Cluster, bouncer: PgBouncer, watching: Callable[..., Watching]
) -> None:
    w = watching(
        "pgbouncer", "--watch", "0.5", "-d", bouncer.dsn(dbname="pgbouncer"), "--postgres-dsn", pg.dsn()
    )
    first, line = w.line(lambda t: " pgbouncer tick 1 |" in t, "the first tick")
    assert "clients_waiting=0 (+0, +0 since start)" in line, line
    own = poll(lambda: pgdoctor_pids(pg), "pgdoctor's backend (--postgres-dsn)")
    holder = bouncer.connect(application_name="holder")
    queued: list[pq.abc.PGconn] = []
    try:
        holder.execute("BEGIN")
        holder.execute("SELECT 1")  # the pool's one server connection is held by this transaction
        for _ in range(2):
            raw = pq.PGconn.connect(bouncer.dsn(application_name="queued").encode())
            assert raw.status == pq.ConnStatus.OK, raw.get_error_message()
            raw.send_query(b"SELECT 1")
            raw.flush()
            queued.append(raw)
        waiting, line = w.line(lambda t: "clients_waiting=2 (+" in t, "2 clients waiting", first)
        assert "pool: postgres/postgres=2 (" in line and "since start)" in line, line
        holder.execute("COMMIT")  # the queue drains
        _, line = w.line(lambda t: "clients_waiting=0 (-" in t, "the queue to drain", waiting + 1)
        assert "postgres/postgres=0 (-" in line, line
    finally:
        holder.close()
        for raw in queued:
            raw.finish()
    stopped_cleanly(pg, w, own[0])
    # pgdoctor's console connection is gone too: the only client of the console is the admin query's own
    poll(
        lambda: len([c for c in bouncer.admin("SHOW CLIENTS") if c["database"] == "pgbouncer"]) == 1,
        "pgdoctor's console connection to go",
    )


def test_connections_with_pgbouncer_dsn_names_the_clients_behind_the_pool(
    pg: Cluster, bouncer: PgBouncer, watching: Callable[..., Watching]
) -> None:
    """Three layers, watched: the server connection PgBouncer lends a client counts under the client's
    application, `(via pgbouncer)`, each tick (its console read on its own one connection)."""
    admin = bouncer.dsn(dbname="pgbouncer")
    w = watching("connections", "--watch", "0.5", "-d", pg.dsn(), "--pgbouncer-dsn", admin)
    first, _ = w.line(lambda t: " connections tick 1 |" in t, "the first tick")
    own = poll(lambda: pgdoctor_pids(pg), "pgdoctor's backend")
    holder = bouncer.connect(application_name="holder")
    try:
        holder.execute("BEGIN")
        holder.execute("SELECT 1")  # a server connection lent to this client for its transaction
        held, _ = w.line(lambda t: "holder (via pgbouncer)=1 (+1" in t, "the client behind the pool", first)
        holder.execute("COMMIT")
        w.line(lambda t: "holder (via pgbouncer)=0 (-1" in t, "the transaction to end", held + 1)
    finally:
        holder.close()
    consoles = [c for c in bouncer.admin("SHOW CLIENTS") if c["database"] == "pgbouncer"]
    assert len(consoles) == 2  # pgdoctor's console connection, held all along, and the admin query's own
    stopped_cleanly(pg, w, own[0])
    poll(
        lambda: len([c for c in bouncer.admin("SHOW CLIENTS") if c["database"] == "pgbouncer"]) == 1,
        "pgdoctor's console connection to go",
    )


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


class Terminal:
    """`pgdoctor …` on a real terminal: a detached tmux session of 200x60, its screen read with
    capture-pane, keys sent with send-keys; the exit status written to a file when pgdoctor ends."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.status = tmp_path / "status"
        self.name = f"pgdoctor-watch-{uuid.uuid4().hex[:8]}"
        exports = " ".join(f"{k}={v!r}" for k, v in env().items() if k in ("PYTHONPATH", "XDG_CONFIG_HOME"))
        words = " ".join(f"'{a}'" for a in args)
        command = (
            # the terminal's own size (not the test runner's COLUMNS), colours as a terminal has them
            f"env -u NO_COLOR -u COLUMNS -u LINES {exports} {sys.executable} -m pgdoctor {words}; "
            f"echo $? > {self.status}; sleep 600"
        )
        tmux("new-session", "-d", "-s", self.name, "-x", "200", "-y", "60", command)

    def screen(self) -> str:
        return tmux("capture-pane", "-p", "-t", self.name)

    def showing(self, pattern: str, what: str) -> str:
        """The screen, once `pattern` (a regular expression, multiline) is on it."""
        found = re.compile(pattern, re.MULTILINE)
        text: str = poll(lambda: (s := self.screen()) and found.search(s) and s, what)
        return text

    def ctrl_c(self) -> str:
        """Ctrl-C as a key; the exit status."""
        assert not self.status.exists()  # still running until now
        tmux("send-keys", "-t", self.name, "C-c")
        poll(lambda: self.status.exists() and self.status.read_text().strip(), "the exit status")
        return self.status.read_text().strip()

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True, check=False)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux)")
    started: list[Terminal] = []

    def start(*args: str) -> Terminal:
        started.append(Terminal(tmp_path, *args))
        return started[-1]

    yield start
    for t in started:
        t.close()


def test_connections_live_screen_in_a_terminal(
    pg: Cluster, sessions: Sessions, terminal: Callable[..., Terminal]
) -> None:
    app = f"tty-{uuid.uuid4().hex[:6]}"
    term = terminal("connections", "--watch", "1", "-d", pg.dsn())
    text = term.showing(r"^Changes \(sessions per application\)", "the screen")
    assert "--watch 1s · tick" in text and "Ctrl-C to stop" in text
    assert "Client sessions by application" in text  # the command's own table below the changes
    own = poll(lambda: pgdoctor_pids(pg), "pgdoctor's backend")
    sessions.idle(app, 2)
    # its row of the changes: 2 now, +2 since the start; and of the command's table: 2 in all, 2 idle
    text = term.showing(rf"^\s*{re.escape(app)}\s+2\s+[+]\d+\s+\+2\s*$", "the app's 2 new sessions")
    assert re.search(rf"^\s*{re.escape(app)}\s+2\s+0\s+2\s", text, re.MULTILINE)
    assert term.ctrl_c() == "0"
    poll(lambda: own[0] not in pgdoctor_pids(pg), "pgdoctor's backend to go")
    assert "Traceback" not in term.screen() and "interrupted" not in term.screen()


def test_locks_live_screen_in_a_terminal(
    pg: Cluster, sessions: Sessions, terminal: Callable[..., Terminal]
) -> None:
    table = f"tty_{uuid.uuid4().hex[:6]}"
    pg.sql(f"CREATE TABLE {table} (id int)")
    try:
        term = terminal("locks", "--watch", "1", "-d", pg.dsn())
        term.showing(r"^Changes \(sessions held up per root blocker\)", "the screen")
        own = poll(lambda: pgdoctor_pids(pg), "pgdoctor's backend")
        holder = sessions.open("holder")
        holder.execute("BEGIN")
        holder.execute(f"LOCK TABLE {table}".encode())
        blocker = holder.info.backend_pid
        waiter = sessions.send("waiter", f"SELECT count(*) FROM {table}")
        wait_for_lock_waits(pg, [waiter], timeout=DEADLINE_S)
        # the blocker's row (1 held up, +1 since the start), then the tree of the command's own report
        text = term.showing(rf"^\s*pid {blocker}\s+1\s+[+]\d\s+\+1\s*$", "the blocker's row")
        assert re.search(r"^\s*blockers\s+1\s", text, re.MULTILINE), text
        assert str(waiter) in text
        holder.execute("COMMIT")
        # "ended since last tick: pid …" shows for one tick; the blockers' row at 0 stays (a busy machine
        # may read the screen less often than once a tick)
        term.showing(
            rf"(^ended since last tick: pid {blocker} \(holder)|(^\s*blockers\s+0\s+-1\s+\+0\s*$)"
            r"|(^\s*blockers\s+0\s+\+0\s+\+0\s*$)",
            "the blocker to end",
        )
        assert term.ctrl_c() == "0"
        poll(lambda: own[0] not in pgdoctor_pids(pg), "pgdoctor's backend to go")
    finally:
        sessions.close()
        pg.sql(f"DROP TABLE {table}")


def test_idle_session_timeout_does_not_end_the_watch(pg: Cluster, watching: Callable[..., Watching]) -> None:
    """Between ticks pgdoctor's session is idle: Database.sleep keeps it under idle_session_timeout, with a
    cheap read at half of it (seen in pg_stat_statements: `SELECT /* pgdoctor */ $1`)."""
    role = "watch_idle"
    pg.sql(f"DROP ROLE IF EXISTS {role}")
    pg.sql(f"CREATE ROLE {role} LOGIN IN ROLE pg_read_all_stats")
    pg.sql(f"ALTER ROLE {role} SET idle_session_timeout = '1s'")
    pg.sql("SELECT pg_stat_statements_reset()")
    try:
        # ticks 3 s apart: more than idle_session_timeout
        w = watching("connections", "--watch", "3", "-d", pg.dsn(user=role))
        w.line(lambda t: " connections tick 3 |" in t, "three ticks")
        own = pgdoctor_pids(pg)
        assert len(own) == 1
        stopped_cleanly(pg, w, own[0])
        keepalive = pg.sql(
            "SELECT sum(calls) FROM pg_stat_statements WHERE query = 'SELECT /* pgdoctor */ $1'"
        )[0][0]
        assert keepalive is not None and keepalive >= 4, keepalive  # two ticks' pauses, two a pause at least
    finally:
        pg.sql(f"DROP ROLE IF EXISTS {role}")
