"""`pgdoctor record` against real servers: ticks of what `connections` reads while two applications'
sessions change, stopped by --for, SIGTERM and SIGKILL; the reader skips a partial line; appending."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import NO_CONFIG, ROOT, run_cli
from tests.incidents import Sessions, wait_until
from tests.pgbouncer import available as pgbouncer_available
from tests.pgbouncer import running_pgbouncer
from tests.pgcluster import Cluster

pytestmark = pytest.mark.server


def lines(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a recording, decoded."""
    if not path.exists():
        return []
    out = []
    for raw in path.read_bytes().split(b"\n"):
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue
    return out


def ticks(path: Path) -> list[dict[str, Any]]:
    return [line for line in lines(path) if line.get("kind") == "tick"]


def start_record(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", **NO_CONFIG}
    env.pop("DATABASE_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "pgdoctor", "record", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_ticks(path: Path, n: int, proc: subprocess.Popen[str] | None = None) -> int:
    """Wait until the recording holds at least n ticks; the count then."""

    def enough() -> bool:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"recorder exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
            )
        return len(ticks(path)) >= n

    wait_until(enough, timeout=90, what=f"{n} ticks in {path}")
    return len(ticks(path))


def pgdoctor_sessions(pg: Cluster) -> int:
    rows = pg.sql(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE query LIKE '%/* pgdoctor */%' AND pid <> pg_backend_pid()"
    )
    return int(rows[0][0])


def test_for_gives_its_ticks_and_a_header(pg: Cluster, sessions: Sessions, tmp_path: Path) -> None:
    """--every 0.5s --for 3s: six ticks (0, 0.5 … 2.5 s), however slow each read is; the header names the
    server; each tick counts per application and class."""
    sessions.idle("app_b", 2)
    out = tmp_path / "r.jsonl"
    result = run_cli("record", "-d", pg.dsn(), "-o", str(out), "--every", "0.5s", "--for", "3s", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "6 tick(s) recorded" in result.stderr
    header, *rest = lines(out)
    assert header["format"] == "pgdoctor-recording" and header["kind"] == "header" and header["version"] == 1
    assert header["server"]["version_num"] // 10000 == int(pg.version)
    assert header["server"]["system_identifier"]
    assert header["every_s"] == 0.5 and header["thresholds"]["idle_xact_warn_s"] == 60.0
    assert [r["kind"] for r in rest] == ["tick"] * 6
    assert all(r["apps"]["app_b"] == {"idle": 2} for r in rest)
    assert all(r["used"] == 2 and r["usable"] == 97 for r in rest)
    assert "pools" not in rest[0]  # no PgBouncer asked for
    assert pgdoctor_sessions(pg) == 0


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_with_exit_0_and_the_connection_closed(
    pg: Cluster, sessions: Sessions, tmp_path: Path, stop: signal.Signals
) -> None:
    """SIGTERM (a service manager, `timeout`) and Ctrl-C: exit 0, whole lines, the session gone."""
    out = tmp_path / "r.jsonl"
    proc = start_record("-d", pg.dsn(), "-o", str(out), "--every", "0.5s")
    try:
        wait_ticks(out, 2, proc)
        assert pgdoctor_sessions(pg) == 1  # the recorder's one connection
        proc.send_signal(stop)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert err.startswith("stopped: ") and err.count("\n") == 1, err
    assert out.read_bytes().endswith(b"\n")
    wait_until(lambda: pgdoctor_sessions(pg) == 0, 20, "the recorder's session to end")


def test_an_incident_recorded_killed_and_told(pg: Cluster, sessions: Sessions, tmp_path: Path) -> None:
    """app_a leaks idle connections (1, then 4, then 7), app_b keeps 2; then a session of app_c goes idle in
    transaction. Each change is made after the recording holds some ticks, and checked in the ticks read
    after it: a leak finding from the tick app_a reached the threshold, the idle-in-transaction finding
    after its second. SIGKILL mid-recording, a truncated line by hand: the reader skips it with a note."""
    out = tmp_path / "incident.jsonl"
    sessions.idle("app_a", 1)
    sessions.idle("app_b", 2)
    proc = start_record(
        "-d", pg.dsn(), "-o", str(out), "--every", "0.5s",
        "--leak-min-idle", "5", "--leak-share-pct", "5", "--idle-xact-warn", "1",
    )  # fmt: skip
    try:
        # each change between two counts of the ticks written: those before `pre` were read before it,
        # those after `post` (the tick in progress at `post` may be either) after it
        pre1 = wait_ticks(out, 2, proc)
        sessions.idle("app_a", 3)
        post1 = len(ticks(out))
        pre2 = wait_ticks(out, post1 + 3, proc)
        sessions.idle("app_a", 3)
        post2 = len(ticks(out))
        prex = wait_ticks(out, post2 + 3, proc)
        sessions.idle_in_transaction("app_c")
        postx = len(ticks(out))
        wait_ticks(out, postx + 6, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    recorded = ticks(out)
    a = [t["apps"].get("app_a", {}).get("idle", 0) for t in recorded]
    assert a[:pre1] == [1] * pre1
    assert a[post1 + 1 : pre2] == [4] * (pre2 - post1 - 1)
    assert a[post2 + 1 :] == [7] * (len(a) - post2 - 1)
    assert a == sorted(a) and set(a) == {1, 4, 7}  # it only grew
    assert all(t["apps"]["app_b"] == {"idle": 2} for t in recorded)

    def has(t: dict[str, Any], code: str, subject: str) -> bool:
        return any(f[1:] == [code, subject] for f in t.get("findings", []))

    leak = [has(t, "idle_connections", "app_a") for t in recorded]
    assert leak == [n >= 5 for n in a]  # from the first tick with 5 or more idle, and not before
    first_leak = leak.index(True)
    assert "idle_connections app_a" in recorded[first_leak]["messages"]  # the message, once, when new
    assert "idle_connections app_a" not in recorded[first_leak + 1].get("messages", {})
    assert not any(has(t, "idle_connections", "app_b") for t in recorded)
    xact = [has(t, "idle_in_transaction", "app_c") for t in recorded]
    first_xact = xact.index(True)
    assert first_xact >= postx and not any(xact[:prex])
    assert recorded[first_xact]["oldest_idle_in_transaction_s"] >= 1.0
    assert all(xact[first_xact:])

    # a line cut short by hand, as a kill mid-write leaves it
    with out.open("ab") as f:
        f.write(b'{"kind":"tick","t":17')
    told(out, a, first_leak, first_xact)
    appended(pg, out, len(recorded))


def told(out: Path, a: list[int], first_leak: int, first_xact: int) -> None:
    """`timeline` of the killed recording: the cut line noted, app_a's growth and each finding's first
    tick, in the JSON and in the table."""
    result = run_cli("timeline", str(out), "-f", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["ticks"] == len(a)
    assert len(doc["notes"]) == 1 and "the last, is incomplete" in doc["notes"][0]
    episodes = {(e["code"], e["subject"]): e for e in doc["episodes"]}
    assert episodes[("idle_connections", "app_a")]["first_seen"] == doc["points"][first_leak]["time"]
    assert episodes[("idle_connections", "app_a")]["cleared"] is None
    assert episodes[("idle_in_transaction", "app_c")]["first_seen"] == doc["points"][first_xact]["time"]
    assert [p["applications"].get("app_a", 0) for p in doc["points"]] == a

    table = run_cli("timeline", str(out), "-f", "plain", "--rows", "0", "--utc", "--no-chart")
    assert table.returncode == 0, table.stderr
    body = table.stdout.split("Slots in use over time", 1)[1].split("Findings over time")[0]
    head, _, *rows = [line for line in body.splitlines() if line.strip() and "ticks:" not in line]
    assert len(rows) == len(a)
    column = head.split().index("app_a")
    assert [int(r.split()[column]) for r in rows] == a  # app_a's growth, tick by tick
    assert "+warning idle_connections [app_a]" in rows[first_leak]
    assert "idle_connections [app_a]" not in "".join(rows[:first_leak])
    assert "note: line" in table.stdout


def appended(pg: Cluster, out: Path, n: int) -> None:
    """Appending continues the recording (of n ticks), after a `resume` line."""
    # the cut line is then in the middle, skipped the same way
    more = run_cli("record", "-d", pg.dsn(), "-o", str(out), "--every", "0.5s", "--for", "1s")
    assert more.returncode == 0, more.stderr
    resumed = json.loads(run_cli("timeline", str(out), "-f", "json").stdout)
    assert resumed["ticks"] == n + 2 and len(resumed["resumed"]) == 1
    assert "not a complete record" in resumed["notes"][0]
    assert "(recording resumed)" in resumed["points"][n]["events"]


def test_a_recording_of_another_server_is_not_appended_to(pg: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    assert run_cli("record", "-d", pg.dsn(), "-o", str(out), "--for", "0.1s").returncode == 0
    header, *rest = out.read_text().splitlines()
    doc = json.loads(header)
    doc["server"]["system_identifier"] = "42"
    out.write_text("\n".join([json.dumps(doc), *rest]) + "\n")
    before = out.read_bytes()
    result = run_cli("record", "-d", pg.dsn(), "-o", str(out), "--for", "0.1s")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "another server" in result.stderr
    assert result.stderr.count("\n") == 1
    assert out.read_bytes() == before
    other = tmp_path / "not-a-recording.json"
    other.write_text('{"some": "json"}\n')
    refused = run_cli("record", "-d", pg.dsn(), "-o", str(other), "--for", "0.1s")
    assert refused.returncode == 2 and "not a pgdoctor recording" in refused.stderr


def test_max_size_stops_the_recording(pg: Cluster, sessions: Sessions, tmp_path: Path) -> None:
    """A line that would take the file past --max-size is not written: the file stays under it, whole."""
    sessions.idle("app_b", 3)
    out = tmp_path / "r.jsonl"
    start = time.monotonic()
    result = run_cli(
        "record", "-d", pg.dsn(), "-o", str(out), "--every", "0.1s", "--max-size", "5k", timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "reached --max-size" in result.stderr
    assert 4096 < out.stat().st_size <= 5 * 1024
    assert out.read_bytes().endswith(b"\n")
    assert len(ticks(out)) >= 10 and time.monotonic() - start < 120


def test_idle_session_timeout_does_not_end_the_recording(pg: Cluster, tmp_path: Path) -> None:
    """A role whose idle_session_timeout (1 s) is shorter than --every: pgdoctor's sleep between ticks
    reads in time, so the server never ends its session and every tick is recorded."""
    pg.sql(
        "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rec_idle') THEN "
        "CREATE ROLE rec_idle LOGIN IN ROLE pg_monitor; END IF; END$$"
    )
    pg.sql("ALTER ROLE rec_idle SET idle_session_timeout = '1s'")
    out = tmp_path / "r.jsonl"
    result = run_cli(
        "record", "-d", pg.dsn(user="rec_idle"), "-o", str(out), "--every", "2.5s", "--for", "5s"
    )
    assert result.returncode == 0, result.stderr
    assert len(ticks(out)) == 2 and lines(out)[0]["server"]["current_user"] == "rec_idle"


@pytest.mark.skipif(
    not pgbouncer_available(), reason="PgBouncer is not installed (apt-get install pgbouncer)"
)
def test_pgbouncer_pools_are_recorded(pg: Cluster, tmp_path: Path) -> None:
    """With --pgbouncer-dsn, each tick has PgBouncer's pools: 3 clients of a pool of 1 server connection,
    each running a 3 s query: 2 wait in PgBouncer's queue."""
    out = tmp_path / "r.jsonl"
    with running_pgbouncer(pg, pool_mode="transaction", pool_size=1) as bouncer:
        clients = [bouncer.connect(application_name="queued") for _ in range(3)]
        workers = [threading.Thread(target=c.execute, args=("SELECT pg_sleep(3)",)) for c in clients]
        try:
            for w in workers:
                w.start()
            wait_until(
                lambda: sum(int(p["cl_waiting"]) for p in bouncer.admin("SHOW POOLS")) == 2, 20, "2 waiting"
            )
            result = run_cli(
                "record", "-d", pg.dsn(), "-o", str(out), "--every", "0.5s", "--for", "1s",
                "--pgbouncer-dsn", bouncer.dsn(dbname="pgbouncer"),
            )  # fmt: skip
        finally:
            for w in workers:
                w.join()
            for c in clients:
                c.close()
    assert result.returncode == 0, result.stderr
    header, *recorded = lines(out)
    assert header["pgbouncer"].startswith("PgBouncer")
    assert len(recorded) == 2
    pool = recorded[0]["pools"][0]
    assert pool["database"] == "postgres" and pool["cl_waiting"] == 2 and pool["cl_active"] == 1
    assert pool["maxwait_s"] >= 0
    assert all(p["database"] != "pgbouncer" for t in recorded for p in t["pools"])
    assert recorded[0]["apps"]["queued"] == {"active": 1}  # its one server connection
