"""`connections --sample` against real applications started here, all at once on one server:

- GPUStack's shape: SQLAlchemy `create_async_engine` (asyncpg) at its default pool (5 + 10) in three
  processes, each request holding its session through 2 s of "inference", 25 requests at once per
  process (more than the pool's 15) -> app_pool_saturated for that application at its client address;
- a Flask-SQLAlchemy app under waitress whose requests read, then sleep 10 s inside their transaction
  -> slow_work_in_transaction (whatever --idle-xact-warn is: the gaps never reach a minute);
- a Django app with CONN_MAX_AGE = None under a burst of requests: one connection per worker thread held
  for good, idle (a plateau that is not a saturated pool), no application_name;
- a healthy SQLAlchemy app (short transactions, idle connections to spare): neither finding.

One incident serves every test of the module (one sample live and one `snapshot --sample` taken at the
same time), so the module costs about half a minute per server version.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, run_cli
from tests.incidents import ensure_database, ensure_role, wait_until
from tests.pgcluster import PASSWORD, Cluster

pytestmark = pytest.mark.server

ASYNC_PROCESSES = 3
ASYNC_TASKS = 25  # per process: more than SQLAlchemy's default 5 + 10
ASYNC_HOLD_S = 2.0
FLASK_THREADS = 4
FLASK_SLEEP_S = 10.0
DJANGO_THREADS = 8
HEALTHY_THREADS = 2
SAMPLE = "10s"
RUN_S = 90.0  # every application ends by itself after this, whatever happens to the test


@dataclass
class Incident:
    live: dict[str, Any]
    from_snapshot: dict[str, Any]
    single_reads: list[dict[str, Any]]
    interrupted: dict[str, Any]
    interrupted_rc: int
    snapshot: Path


def _count(pg: Cluster, where: str) -> int:
    rows = pg.sql(f"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND {where}")
    return int(rows[0][0])


def _start(args: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def incident(pg: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Incident]:
    for db in ("gpustack", "flaskapp", "djangoapp", "healthy"):
        ensure_database(pg, db)
    ensure_role(pg, "django_user")
    url = f"postgres:{PASSWORD}@127.0.0.1:{pg.port}"
    apps = [
        _start(
            [
                "tests.apps.async_pool",
                f"postgresql+asyncpg://{url}/gpustack",
                "gpustack",
                str(ASYNC_TASKS),
                str(ASYNC_HOLD_S),
                str(RUN_S),
            ]
        )
        for _ in range(ASYNC_PROCESSES)
    ]
    apps.append(
        _start(
            [
                "tests.apps.flask_app",
                f"postgresql+psycopg://{url}/flaskapp",
                "flaskapp",
                str(FLASK_THREADS),
                str(FLASK_SLEEP_S),
                str(RUN_S),
            ]
        )
    )
    apps.append(
        _start(
            [
                "tests.apps.django_app",
                str(pg.socket_dir),
                str(pg.port),
                "django_user",
                "djangoapp",
                str(DJANGO_THREADS),
                str(RUN_S),
            ]
        )
    )
    apps.append(
        _start(
            [
                "tests.apps.healthy",
                f"postgresql+psycopg://{url}/healthy",
                "healthy",
                str(HEALTHY_THREADS),
                str(RUN_S),
            ]
        )
    )
    try:

        def started() -> bool:
            dead = [a for a in apps if a.poll() is not None]
            assert not dead, dead[0].stderr.read() if dead[0].stderr else "an application ended"
            return (
                _count(pg, "application_name = 'gpustack'") == ASYNC_PROCESSES * 15
                and _count(pg, "application_name = 'flaskapp' AND state = 'idle in transaction'")
                >= FLASK_THREADS - 1
                and _count(pg, "usename = 'django_user'") == DJANGO_THREADS
                and _count(pg, "application_name = 'healthy'") >= 2
            )

        wait_until(started, timeout=60, what="the applications under load")
        snap = tmp_path_factory.mktemp("sample") / "sampled.json"
        dsn = pg.dsn()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
        env.pop("DATABASE_URL", None)
        live = subprocess.Popen(
            [sys.executable, "-m", "pgdoctor", "connections", "-d", dsn, "--sample", SAMPLE, "-f", "json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        stored = subprocess.Popen(
            [sys.executable, "-m", "pgdoctor", "snapshot", "-d", dsn, "--sample", SAMPLE, "-o", str(snap)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = live.communicate(timeout=120)
        assert live.returncode in (0, 1), err
        live_doc = json.loads(out)
        _, err = stored.communicate(timeout=120)
        assert stored.returncode == 0, err
        result = run_cli("connections", "--snapshot", str(snap), "-f", "json")
        assert result.returncode in (0, 1), result.stderr
        snap_doc = json.loads(result.stdout)

        singles = []
        for _ in range(3):  # one read: a moment, in which one connection may be between two requests
            result = run_cli("connections", "-d", dsn, "-f", "json")
            assert result.returncode in (0, 1), result.stderr
            singles.append(json.loads(result.stdout))

        # Ctrl-C during a sample: what was sampled until then
        cut = subprocess.Popen(
            [sys.executable, "-m", "pgdoctor", "connections", "-d", dsn, "--sample", "60s", "-f", "json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(3)
        cut.send_signal(signal.SIGINT)
        out, err = cut.communicate(timeout=30)
        yield Incident(
            live_doc, snap_doc, singles, json.loads(out) if out else {"stderr": err}, cut.returncode, snap
        )
    finally:
        for a in apps:
            if a.poll() is None:
                a.terminate()
        for a in apps:
            try:
                a.wait(timeout=10)
            except subprocess.TimeoutExpired:
                a.kill()
                a.wait()
        pg.terminate_others()


def groups(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["label"]: g for g in doc["groups"]}


def findings(doc: dict[str, Any], subject: str) -> set[str]:
    return {f["code"] for f in doc["findings"] if f["subject"] == subject}


GPUSTACK = "gpustack @ 127.0.0.1"
FLASK = "flaskapp @ 127.0.0.1"
DJANGO = "(no application_name) django_user @ local socket"
HEALTHY = "healthy @ 127.0.0.1"


def test_async_pool_at_its_ceiling_is_saturated(incident: Incident) -> None:
    g = groups(incident.live)[GPUSTACK]
    assert g["held_max"] == ASYNC_PROCESSES * 15
    assert g["plateau"] is True
    assert g["time_share"]["idle"] <= 0.05
    assert g["pool_match"] is not None and g["pool_match"].startswith(
        f"{ASYNC_PROCESSES} processes x 15, SQLAlchemy"
    )
    assert g["databases"] == ["gpustack"]
    assert "app_pool_saturated" in findings(incident.live, GPUSTACK)
    (f,) = [f for f in incident.live["findings"] if f["code"] == "app_pool_saturated"]
    # the requests hold their sessions through the sleep: idle in transaction, so the cause is named
    assert "slow work inside the transaction" in f["message"]
    assert "bigger pool only moves the queue to PostgreSQL" in f["message"]
    assert "Little's law" in f["message"]
    # transactions of about ASYNC_HOLD_S, measured
    x = g["transactions"]
    assert x["ended"] >= ASYNC_PROCESSES * 15
    assert ASYNC_HOLD_S * 0.9 <= x["p50_s"] <= ASYNC_HOLD_S * 3


def test_slow_call_inside_the_transaction(incident: Incident) -> None:
    g = groups(incident.live)[FLASK]
    x = g["transactions"]
    assert x["idle_in_transaction_share"] >= 0.5
    assert x["typical_idle_gap_s"] >= 1.0
    assert "slow_work_in_transaction" in findings(incident.live, FLASK)
    # 4 threads, a pool of 15: the pool is not what is short
    assert "app_pool_saturated" not in findings(incident.live, FLASK)
    (f,) = [
        f
        for f in incident.live["findings"]
        if f["code"] == "slow_work_in_transaction" and f["subject"] == FLASK
    ]
    assert "never catches" in f["advice"]
    assert "db.session.remove()" in f["advice"]


def test_django_keeps_one_connection_per_thread(incident: Incident) -> None:
    g = groups(incident.live)[DJANGO]
    assert g["user"] == "django_user" and g["application_name"] == ""
    assert g["held_min"] == g["held_max"] == DJANGO_THREADS
    assert g["plateau"] is True
    assert g["time_share"]["idle"] >= 0.9
    assert g["ever_idle"] is True
    # held idle: not a saturated pool, not slow work; kept connections, which are not demand
    assert findings(incident.live, DJANGO) == {"app_connections_held"}
    (f,) = [f for f in incident.live["findings"] if f["subject"] == DJANGO]
    assert "CONN_MAX_AGE" in f["message"] and "pool_recycle" in f["advice"]


def test_healthy_application_has_no_finding(incident: Incident) -> None:
    g = groups(incident.live)[HEALTHY]
    assert g["ever_idle"] is True
    assert g["time_share"]["idle"] > 0.5
    assert findings(incident.live, HEALTHY) == set()
    assert g["transactions"]["per_s_source"] == "pg_stat_database"
    assert g["transactions"]["per_s"] > 5  # two threads, a transaction every ~50 ms each


def test_snapshot_sample_gives_the_same_report(incident: Incident) -> None:
    """Taken at the same time as the live sample (not over the very same reads): the same findings for
    the applications of the incident, the same plateaus."""
    live, stored = incident.live, incident.from_snapshot
    assert stored["source"] == "sample"
    apps = (GPUSTACK, FLASK, DJANGO, HEALTHY)

    def of(doc: dict[str, Any]) -> set[tuple[str, str]]:
        return {(f["code"], f["subject"]) for f in doc["findings"] if f["subject"] in apps}

    assert of(stored) == of(live), (stored["findings"], live["findings"])
    for label in (GPUSTACK, DJANGO):
        assert groups(stored)[label]["held_max"] == groups(live)[label]["held_max"]


def test_one_read_names_the_pattern_as_likely(incident: Incident) -> None:
    likely = [{(f["code"], f["subject"]) for f in doc["findings"]} for doc in incident.single_reads]
    assert any(("app_pool_saturated_likely", "gpustack") in codes for codes in likely)
    for codes in likely:
        assert all(subject == "gpustack" for code, subject in codes if code == "app_pool_saturated_likely")
    hint = next(
        f
        for doc in incident.single_reads
        for f in doc["findings"]
        if f["code"] == "app_pool_saturated_likely"
    )
    assert "--sample 5s" in hint["advice"]


def test_ctrl_c_reports_what_was_sampled(incident: Incident) -> None:
    doc = incident.interrupted
    assert incident.interrupted_rc in (0, 1), doc
    assert doc["sample"]["interrupted"] is True
    assert 1.0 <= doc["sample"]["window_s"] < 30
    assert GPUSTACK in groups(doc)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--sample", "0s"], "between"),
        (["--sample", "abc"], "give a duration"),
        (["--sample", "11m"], "between"),
        (["--sample", "5s", "--ps"], "not with --ps"),
    ],
)
def test_bad_sample_is_one_line(args: list[str], needle: str) -> None:
    result = run_cli("connections", "-d", "host=/nonexistent", *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and needle in result.stderr
    assert result.stderr.count("\n") == 1


def test_sample_with_a_plain_snapshot_is_refused(tmp_path: Path) -> None:
    fixture = ROOT / "fixtures" / "incident-pg15.json"
    result = run_cli("connections", "--snapshot", str(fixture), "--sample", "5s")
    assert result.returncode == 2
    assert "not with --snapshot" in result.stderr


def test_text_report(incident: Incident) -> None:
    result = run_cli("connections", "--snapshot", str(incident.snapshot), "-f", "plain")
    assert result.returncode == 0, result.stderr
    print(result.stdout)
    assert "Share of session time per class" in result.stdout
    for label in (GPUSTACK, FLASK, DJANGO, HEALTHY):
        assert label in result.stdout
    assert "app_pool_saturated" in result.stdout
    assert "application_name" in result.stdout  # how to set it, for the sessions without one


def _on_terminal(args: list[str]) -> tuple[int, str]:
    """Run pgdoctor with stdout and stderr on a pseudo-terminal; what the terminal got."""
    import pty

    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "150", "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "pgdoctor", *args], stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed its side
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


def test_progress_bar_only_on_a_terminal(pg: Cluster) -> None:
    rc, shown = _on_terminal(["connections", "-d", pg.dsn(), "--sample", "1.5s"])
    assert rc == 0, shown
    assert "sampling" in shown and "sessions" in shown  # the bar, with what was seen so far
    rc, shown = _on_terminal(["connections", "-d", pg.dsn(), "--sample", "1s", "-f", "json"])
    assert rc == 0, shown
    assert "sampling" not in shown
    assert json.loads(shown)["source"] == "sample"
    piped = run_cli("connections", "-d", pg.dsn(), "--sample", "1s")
    assert piped.returncode == 0 and piped.stderr == ""


def test_stored_ticks_give_exactly_the_live_report(pg: Cluster, incident: Incident) -> None:
    """The very same reads, analysed as they come (live) and from the snapshot's JSON: one report."""
    from pgdoctor.analyze.sample import analyze_sample
    from pgdoctor.collect.sample import SampleData
    from pgdoctor.commands.sampling import sample
    from pgdoctor.db import connect
    from pgdoctor.render.sample import to_json
    from pgdoctor.serde import convert, to_jsonable

    with connect(pg.dsn(), 5.0) as db:
        data, analysis = sample(db, 2.0, progress=False, keep_ticks=True)
    live = to_json(analysis.finish(data))
    stored = convert(SampleData, json.loads(json.dumps(to_jsonable(data))), where="sample")
    assert to_json(analyze_sample(stored)) == live
    assert GPUSTACK in groups(live)
