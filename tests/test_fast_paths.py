"""What keeps pgdoctor fast (issues 11 and 12), pinned without timing anything: what a run imports, how often
a snapshot file is read, that a large snapshot's rows share their texts, that the JSON written a batch at a
time is the text json.dumps writes, and that the garbage collector is back on after a command.
benchmarks/README.md has the figures these choices bought."""

from __future__ import annotations

import gc
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, NO_CONFIG, ROOT, invoke
from tests.pgbouncer import PgBouncer, available, running_pgbouncer
from tests.pgcluster import Cluster

INCIDENT = FIXTURES / "incident-pg18.json"
PGBOUNCER_SNAPSHOT = FIXTURES / "format-1" / "pgbouncer-pg15.json"

# Modules a run must not import when it does not need them (each costs milliseconds of start-up): rich
# (terminal tables), tabulate (plain text), msgspec and pgdoctor.snapshot (only a snapshot is read or
# written with them), psycopg (only live runs connect), _strptime (the stdlib's date parser, 6 ms),
# tomllib (only a config file is parsed with it), the sampler (only --sample samples).
WATCHED = (
    "rich",
    "tabulate",
    "msgspec",
    "pgdoctor.snapshot",
    "psycopg",
    "_strptime",
    "tomllib",
    "pgdoctor.analyze.sample",
)

PROBE = """
import sys
from pgdoctor.cli import main
sys.argv = ["pgdoctor", *ARGS]
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code
loaded = [m for m in WATCHED if m in sys.modules]
print("LOADED=" + ",".join(loaded), "CODE=" + str(code), file=sys.stderr)
"""


def imported(*args: str) -> set[str]:
    """The watched modules a whole `pgdoctor ARGS` process imported (its exit code 0 or 1)."""
    probe = PROBE.replace("ARGS", repr(list(args))).replace("WATCHED", repr(WATCHED))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", **NO_CONFIG}
    env = {k: v for k, v in env.items() if not k.startswith("PGDOCTOR_") and k != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=env, check=False
    )
    line = [x for x in result.stderr.splitlines() if x.startswith("LOADED=")]
    assert line, result.stderr[-2000:]
    loaded, code = line[-1].split(" CODE=")
    assert code in ("0", "1"), result.stderr[-2000:]
    assert result.stdout.strip(), result.stderr[-2000:]
    return set(filter(None, loaded.removeprefix("LOADED=").split(",")))


@pytest.mark.parametrize("fmt", ["json", "plain", "csv", "markdown"])
def test_offline_connections_imports_no_terminal_or_database_library(fmt: str) -> None:
    loaded = imported("connections", "--snapshot", str(INCIDENT), "-f", fmt)
    assert loaded & {"rich", "psycopg", "_strptime", "tomllib", "pgdoctor.analyze.sample"} == set()
    assert "msgspec" in loaded  # what reads the snapshot (the probe sees imports)
    assert ("tabulate" in loaded) == (fmt == "plain")  # long plain tables do without it; this one is short


def test_offline_pgbouncer_imports_no_terminal_or_database_library() -> None:
    loaded = imported("pgbouncer", "--snapshot", str(PGBOUNCER_SNAPSHOT), "-f", "json")
    assert loaded & {"rich", "tabulate", "psycopg", "_strptime", "tomllib"} == set()


def test_live_connections_imports_no_snapshot_reader(pg: Cluster) -> None:
    loaded = imported("connections", "-d", pg.dsn(), "-f", "json")
    assert loaded == {"psycopg"}


@pytest.fixture(scope="module")
def bouncer(pg: Cluster) -> Iterator[PgBouncer]:
    if not available():
        pytest.skip("PgBouncer is not installed (scripts/test installs it)")
    # one client, so that SHOW CLIENTS has time stamps to read
    with running_pgbouncer(pg) as running, running.connect() as client:
        client.execute("SELECT 1")
        yield running


def test_live_pgbouncer_imports_no_snapshot_reader_nor_date_parser(bouncer: PgBouncer) -> None:
    loaded = imported("pgbouncer", "--dsn", bouncer.dsn(dbname="pgbouncer"), "-f", "json")
    assert loaded == {"psycopg"}


# --- a snapshot file is read once per command -------------------------------------------------------


def test_connections_reads_a_snapshot_file_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """`connections --snapshot` asks whether the file holds a sample, then loads its dataset: one read of
    the file (46 MB for 100,000 sessions), not two."""
    from pgdoctor import snapshot

    reads: list[Path] = []
    real = snapshot._read_bounded

    def counted(path: Path) -> bytearray:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(snapshot, "_read_bounded", counted)
    for _ in range(2):  # and a second command reads the file again (nothing kept past a load)
        result = invoke("connections", "--snapshot", str(INCIDENT), "-f", "json")
        assert result.exit_code in (0, 1), result.stderr
        assert json.loads(result.stdout)["command"] == "connections"
    assert reads == [INCIDENT, INCIDENT]
    assert snapshot._KEPT == {}


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    from pgdoctor import snapshot

    path = tmp_path / "snap.json"
    path.write_bytes(INCIDENT.read_bytes())
    kept = snapshot.read(path, keep=True)
    doc = json.loads(INCIDENT.read_text())
    doc["pgdoctor_version"] = "9.9.9-changed"
    path.write_text(json.dumps(doc))
    again = snapshot.read(path)
    assert again is not kept and again.pgdoctor_version == "9.9.9-changed"


def test_the_gc_is_on_after_a_command() -> None:
    assert gc.isenabled()
    result = invoke("connections", "--snapshot", str(INCIDENT), "-f", "json")
    assert result.exit_code in (0, 1)
    assert gc.isenabled()


# --- the rows of a snapshot share their texts ---------------------------------------------------------


def test_snapshot_rows_share_equal_texts() -> None:
    """One str object per distinct text in the activity rows of a snapshot (100,000 sessions: ~50 MB
    less); values and error messages as before."""
    from pgdoctor.collect.activity import ActivityRow
    from pgdoctor.errors import PgDoctorError
    from pgdoctor.serde import decode

    doc = json.loads(INCIDENT.read_text())
    rows = decode(list[ActivityRow], json.dumps(doc["activity"]).encode(), "activity", ints_bounded=True)
    assert [r.state for r in rows] == [r["state"] for r in doc["activity"]]
    for column in ("backend_type", "state", "usename", "datname", "application_name", "query"):
        texts: dict[str, Any] = {}
        for row in rows:
            value = getattr(row, column)
            if value is not None:
                assert type(value) is str
                assert texts.setdefault(value, value) is value, column
    idle = [r.state for r in rows if r.state == "idle"]
    assert len(idle) > 1 and len({id(s) for s in idle}) == 1
    bad = json.dumps([{**doc["activity"][0], "state": 5}]).encode()
    with pytest.raises(PgDoctorError, match=r"activity\[0\]\.state should be str, found int"):
        decode(list[ActivityRow], bad, "activity", ints_bounded=True)


# --- JSON a batch at a time: the text json.dumps writes -----------------------------------------------

ODD_TEXTS = ["plain", "ctrl \x1b[31m \x07", "tab\tnew\nline", 'quote " back \\', "é 漢字 🎉", "\u2028\u202e"]
ODD_TEXTS += [""]


class _Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


def _emitted(payload: Any) -> str:
    from pgdoctor.render.json_out import emit_json

    out = _Pipe()
    emit_json(payload, out)
    return out.getvalue()


@pytest.mark.parametrize("encoder", ["json", "msgspec"])
def test_json_rows_write_what_json_dumps_writes(monkeypatch: pytest.MonkeyPatch, encoder: str) -> None:
    from pgdoctor.render import json_out

    monkeypatch.setattr(json_out, "JSON_BATCH", 3)  # several batches, and a last one that is short
    monkeypatch.setattr(json_out, "JSON_MSGSPEC_MIN", 0 if encoder == "msgspec" else 10**9)
    items = [
        {"pid": i, "text": ODD_TEXTS[i % len(ODD_TEXTS)], "age": i * 1.25, "none": None, "list": [i, []]}
        for i in range(11)
    ]
    for rows in (items, items[:1], items[:3], []):
        payload = {"command": "x", "rows": json_out.JsonRows(rows, dict), "after": {"a": [1, 2.5]}}
        plain = json_out.plain_json(payload)
        assert plain["rows"] == rows
        assert _emitted(payload) == json.dumps(plain, ensure_ascii=False) + "\n"


def test_a_text_only_the_standard_library_writes_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    from pgdoctor.render import json_out

    monkeypatch.setattr(json_out, "JSON_MSGSPEC_MIN", 0)
    rows = [{"q": "lone \ud800 surrogate"}, {"q": "fine"}]
    payload = {"rows": json_out.JsonRows(rows, dict)}
    assert _emitted(payload) == json.dumps({"rows": rows}, ensure_ascii=False) + "\n"


def test_connections_json_is_its_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    """The streamed report parses to `render.connections.to_json` (what the README's contract tests read),
    with the sessions encoded by msgspec in batches."""
    from pgdoctor.analyze.connections import analyze
    from pgdoctor.collect.connections import ConnectionsData
    from pgdoctor.render import connections as render
    from pgdoctor.render import json_out
    from pgdoctor.snapshot import load_dataset

    monkeypatch.setattr(json_out, "JSON_BATCH", 7)
    monkeypatch.setattr(json_out, "JSON_MSGSPEC_MIN", 0)
    report = analyze(load_dataset(INCIDENT, "connections", ConnectionsData))
    assert len(report.sessions) > 7
    text = _emitted(render.json_payload(report))
    assert json.loads(text) == render.to_json(report)
    assert text == json.dumps(render.to_json(report), ensure_ascii=False) + "\n"


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_json_rows_through_pgdoctors_stdout(monkeypatch: pytest.MonkeyPatch, encoding: str) -> None:
    """pgdoctor's stdout (`cli._Stdout`) takes msgspec's UTF-8 bytes as they are; a stream in another
    encoding gets text, as before. The same text either way."""
    from pgdoctor.cli import _Stdout
    from pgdoctor.render import json_out

    monkeypatch.setattr(json_out, "JSON_BATCH", 3)
    monkeypatch.setattr(json_out, "JSON_MSGSPEC_MIN", 0)
    rows = [
        {"pid": i, "text": "é" if encoding == "latin-1" else ODD_TEXTS[i % len(ODD_TEXTS)]} for i in range(8)
    ]
    payload = {"command": "x", "rows": json_out.JsonRows(rows, dict), "n": 8}
    raw = io.BytesIO()
    text = io.TextIOWrapper(raw, encoding=encoding, write_through=False)
    out = _Stdout(text)
    assert json_out._takes_utf8_bytes(out) == (encoding == "utf-8")  # type: ignore[arg-type]
    json_out.emit_json(payload, out)  # type: ignore[arg-type]
    out.flush()
    assert (
        raw.getvalue().decode(encoding) == json.dumps(json_out.plain_json(payload), ensure_ascii=False) + "\n"
    )
