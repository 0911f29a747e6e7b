"""`pgdoctor timeline` on the recorded incident (fixtures/recording-incident.jsonl, made by
scripts/record_timeline_fixture.py on real PostgreSQL 15 and PgBouncer): the story in every format, the JSON
contract, the terminal chart, and the HTML page as headless Chromium draws it."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, invoke, run_cli

RECORDING = FIXTURES / "recording-incident.jsonl"


def recorded() -> list[dict[str, Any]]:
    return [json.loads(line) for line in RECORDING.read_text().splitlines()[1:]]


def first_tick_with(code: str, subject: str) -> int:
    return next(
        i for i, t in enumerate(recorded()) if any(f[1:] == [code, subject] for f in t.get("findings", []))
    )


@pytest.fixture(scope="module")
def story() -> dict[str, Any]:
    result = invoke("timeline", str(RECORDING), "-f", "json")
    assert result.exit_code == 0, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_json_contract(story: dict[str, Any]) -> None:
    assert story["command"] == "timeline" and story["recording_version"] == 1
    assert set(story) >= {
        "pgdoctor", "server", "pgbouncer", "every_s", "started", "resumed", "thresholds", "ticks", "notes",
        "peak", "points", "applications", "episodes", "findings",
    }  # fmt: skip
    assert story["server"]["version_num"] // 10000 == 15 and story["pgbouncer"].startswith("PgBouncer")
    assert story["ticks"] == len(story["points"]) == len(recorded()) == 36
    assert story["notes"] == [] and story["resumed"] == []
    point = story["points"][0]
    assert set(point) == {
        "time", "t", "used", "usable", "usage_pct", "applications", "classes", "blocked", "blockers",
        "oldest_idle_in_transaction_s", "oldest_xact_s", "pgbouncer_waiting", "pgbouncer_maxwait_s",
        "events", "error",
    }  # fmt: skip
    assert point["time"].endswith("Z") and point["usable"] == 47
    assert story["peak"]["used"] == max(p["used"] for p in story["points"]) == 46
    assert story["peak"]["applications"]["ml-train"] == 38
    # the leak grows, then the operator ends it
    ml = [p["applications"].get("ml-train", 0) for p in story["points"]]
    peak_at = ml.index(38)
    assert ml[0] == 2 and ml[:peak_at] == sorted(ml[:peak_at]) and ml[-1] == 0
    assert max(p["pgbouncer_waiting"] for p in story["points"]) == 3
    episodes = {(e["code"], e["subject"]): e for e in story["episodes"]}
    assert set(episodes) == {
        ("idle_connections", "ml-train"), ("capacity", "server"), ("idle_in_transaction", "worker"),
        ("blocked", "web"),
    }  # fmt: skip
    for (code, subject), e in episodes.items():
        assert e["first_seen"] == story["points"][first_tick_with(code, subject)]["time"], code
        assert e["cleared"] is not None and e["severity"] == "critical" and e["message"]
    assert {f["code"] for f in story["findings"]} == {c for c, _ in episodes}


def test_table_tells_the_story() -> None:
    result = invoke("timeline", str(RECORDING), "-f", "plain", "--utc", "--no-chart")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "peak: 46/47 slots (97.9%)" in out and "ml-train 38" in out
    table = out.split("Slots in use over time", 1)[1].split("Findings over time")[0]
    head = table.strip().splitlines()[0].split()
    assert head[:5] == ["time", "used/usable", "%", "ml-train", "web"]
    rows = [line for line in table.strip().splitlines()[2:] if line.strip()]
    assert len(rows) == 36  # fewer ticks than --rows: every one
    capacity = first_tick_with("capacity", "server")
    assert "+warning capacity [server]" in rows[capacity]
    assert "capacity [server]" not in "".join(rows[:capacity])
    assert "-capacity [server]" in "".join(rows[capacity:])
    assert rows[0].split()[1:4] == ["5/47", "10.6", "2"]
    findings = out.split("Findings over time", 1)[1].split("Per application and class")[0]
    assert findings.index("idle_connections") < findings.index("capacity") < findings.index("blocked")


def test_fewer_rows_keep_every_event_and_the_peak() -> None:
    result = invoke("timeline", str(RECORDING), "-f", "plain", "--rows", "5", "--no-chart")
    assert result.exit_code == 0, result.stderr
    table = result.stdout.split("Slots in use over time", 1)[1].split("Findings over time")[0]
    rows = [line for line in table.strip().splitlines()[2:] if line.strip() and "ticks:" not in line]
    assert 5 <= len(rows) < 36
    assert sum("PEAK" in r for r in rows) == 1
    for code in ("+warning idle_connections", "+warning capacity", "-capacity", "-blocked"):
        assert any(code in r for r in rows), code


@pytest.mark.parametrize("fmt", ["markdown", "csv", "table"])
def test_other_formats(fmt: str) -> None:
    result = invoke("timeline", str(RECORDING), "-f", fmt, "--no-chart")
    assert result.exit_code == 0, result.stderr
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(result.stdout)))
        assert rows[0][:4] == ["time", "used/usable", "%", "ml-train"] and len(rows) == 37
    else:
        assert "Slots in use over time" in result.stdout and "idle_in_transaction" in result.stdout


def test_fail_on_and_bad_files(tmp_path: Path) -> None:
    assert invoke("timeline", str(RECORDING), "--fail-on", "critical", "-f", "json").exit_code == 1
    missing = invoke("timeline", str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 2 and missing.stderr.startswith("error: cannot read")
    other = tmp_path / "other.jsonl"
    other.write_text('{"hello": 1}\n')
    assert "not a pgdoctor recording" in invoke("timeline", str(other)).stderr
    newer = tmp_path / "newer.jsonl"
    header = json.loads(RECORDING.read_text().splitlines()[0])
    newer.write_text(json.dumps({**header, "version": 99}) + "\n")
    result = invoke("timeline", str(newer))
    assert result.exit_code == 2 and "newer pgdoctor" in result.stderr and result.stderr.count("\n") == 1


def test_a_line_of_an_unknown_kind_is_ignored_and_a_header_only_file_reads(tmp_path: Path) -> None:
    """Later format versions may add kinds of lines; a recording stopped before its first tick reads."""
    lines = RECORDING.read_text().splitlines()
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("\n".join([lines[0], '{"kind": "marker", "text": "x"}', *lines[1:]]) + "\n")
    doc = json.loads(invoke("timeline", str(mixed), "-f", "json").stdout)
    assert doc["ticks"] == 36 and doc["notes"] == []
    empty = tmp_path / "empty.jsonl"
    empty.write_text(lines[0] + "\n")
    result = invoke("timeline", str(empty), "-f", "plain")
    assert result.exit_code == 0 and "no tick recorded" in result.stdout


def test_terminal_chart() -> None:
    """The chart in a terminal's format: one line per application, all clients and the usable slots."""
    result = run_cli("timeline", str(RECORDING), "-f", "plain", "--utc")
    assert result.returncode == 0, result.stderr
    chart = result.stdout.split("pgdoctor timeline", 1)[0]
    assert "slots in use per application" in chart
    for label in ("ml-train", "all clients", "usable slots"):
        assert label in chart
    assert "\x1b[" not in chart  # plain: no colour
    assert sum(c in "⠁⠂⠄⡀⢀⣀⠉⠒⠤" for c in chart) > 50  # braille dots drawn


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_html_page_opens_without_network_and_draws_the_chart(tmp_path: Path) -> None:
    """--html writes one file with plotly.js inlined; headless Chromium (no network) draws it: the
    screenshot is far from blank, and has the stacked areas' colours."""
    page = tmp_path / "incident.html"
    result = invoke("timeline", str(RECORDING), "--html", str(page), "-f", "json")
    assert result.exit_code == 0, result.stderr
    text = page.read_text()
    assert "<script src=" not in text and "cdn.plot.ly" not in text.split("<script", 1)[0]
    assert "ml-train" in text and "Findings over time" in text
    browser = chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (scripts/test installs Debian's chromium)")
        pytest.skip("chromium is not installed")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,800",
         "--virtual-time-budget=10000", page.as_uri()],
        capture_output=True, timeout=180, check=False,
    )  # fmt: skip
    assert shot.exists(), "chromium made no screenshot"
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 800)
    raw = image.tobytes()
    pixels = list(zip(raw[0::3], raw[1::3], raw[2::3], strict=True))
    not_white = sum(1 for p in pixels if min(p) < 235)
    assert not_white > 0.08 * len(pixels), not_white  # text alone is a few per cent
    colours = set(pixels)
    assert len(colours) > 200
    # the stacked area of ml-train (plotly's first colour, #1f77b4, drawn half-transparent)
    blueish = sum(1 for r, g, b in pixels if b > 150 and r < 170 and b - r > 40)
    assert blueish > 0.03 * len(pixels), blueish


def test_hostile_application_names(tmp_path: Path) -> None:
    """Application names are written by other roles: shown escaped in text, never run in the HTML page."""
    header, *rest = RECORDING.read_text().splitlines()
    evil = "</script><script>alert(1)</script>\x1b]0;owned\x07"
    lines = [json.loads(line) for line in rest]
    for t in lines:
        t["apps"] = {evil if app == "ml-train" else app: c for app, c in t.get("apps", {}).items()}
        t["findings"] = [
            [s, c, evil if subject == "ml-train" else subject] for s, c, subject in t.get("findings", [])
        ]
    hostile = tmp_path / "hostile.jsonl"
    hostile.write_text("\n".join([header, *map(json.dumps, lines)]) + "\n")
    page = tmp_path / "hostile.html"
    result = invoke("timeline", str(hostile), "-f", "plain", "--html", str(page))
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stdout and "\\x1b]0;owned\\x07" in result.stdout
    text = page.read_text()
    assert "<script>alert(1)" not in text and "</script><script>alert" not in text
    assert (
        json.loads(invoke("timeline", str(hostile), "-f", "json").stdout)["peak"]["applications"][evil] == 38
    )


def test_record_usage_errors_before_connecting(tmp_path: Path) -> None:
    """Bad durations, sizes and outputs: one line, exit 2, no server needed (the DSN points nowhere)."""
    nowhere = f"host={tmp_path} port=1"
    for args, words in [
        (["--every", "0"], "--every '0': must be between 0.1s and 3600s"),
        (["--every", "soon"], "give a duration"),
        (["--for", "40d"], "--for '40d'"),
        (["--max-size", "1k"], "at least 4096 bytes"),
        (["--max-size", "big"], "give a size"),
    ]:
        result = invoke("record", "-d", nowhere, "-o", str(tmp_path / "r.jsonl"), *args)
        assert result.exit_code == 2, (args, result.stderr)
        assert (
            result.stderr.startswith("error: ") and words in result.stderr and result.stderr.count("\n") == 1
        )
    assert invoke("record", "-d", nowhere, "-o", "-").exit_code == 2
    assert invoke("record", "-d", nowhere, "-o", str(tmp_path)).exit_code == 2
    assert not (tmp_path / "r.jsonl").exists()
