"""`--watch` without a server: the deltas between ticks (pure functions of the commands' reports), the
summary line and the JSON line, the optional value of `--watch`, and its usage errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pgdoctor.analyze.connections import analyze as analyze_connections
from pgdoctor.analyze.findings import Finding, Severity
from pgdoctor.analyze.locks import analyze as analyze_locks
from pgdoctor.analyze.pgbouncer import analyze as analyze_pgbouncer
from pgdoctor.analyze.watch import (
    Picture,
    Watch,
    compare,
    connections_picture,
    locks_picture,
    pgbouncer_picture,
)
from pgdoctor.collect.activity import ActivityRow
from pgdoctor.collect.connections import ConnectionsData
from pgdoctor.collect.locks import LocksData
from pgdoctor.collect.pgbouncer import PgBouncerData
from pgdoctor.commands.watching import MAX_WATCH_S, MIN_WATCH_S, parse_interval
from pgdoctor.errors import PgDoctorError
from pgdoctor.options import OPTIONAL_VALUES, with_optional_values
from pgdoctor.render.watch import LINE_MAX_KEYS, summary_line, watch_json
from pgdoctor.snapshot import load_dataset
from tests.conftest import FIXTURES, invoke
from tests.test_cli_config import parsed
from tests.test_cli_wiring import write_pgbouncer_snapshot

INCIDENT = FIXTURES / "incident-pg18.json"
LOCKS = FIXTURES / "locks-pg18.json"


def picture(counts: dict[str, int], *, at: float = 0.0, members: dict[str, str] | None = None) -> Picture:
    return Picture(
        command="connections",
        at=at,
        totals={"used": sum(counts.values()), "usable": 97},
        counts_of="application",
        counts=counts,
        members=members or {},
    )


def test_compare_counts_since_last_and_since_start() -> None:
    start = picture({"web": 5, "worker": 2}, at=100.0)
    prev = picture({"web": 8, "worker": 2}, at=102.0)
    now = picture({"web": 6, "batch": 3}, at=104.0)
    delta = compare(start, prev, now, tick=3)
    got = {c.key: (c.now, c.since_last, c.since_start) for c in delta.counts}
    # web: took 3 then freed 2; worker: all 2 freed; batch: new
    assert got == {"web": (6, -2, 1), "worker": (0, -2, -2), "batch": (3, 3, 3)}
    # the biggest move since the last tick first
    assert delta.counts[0].key == "batch"
    used = delta.totals[0]
    assert (used.key, used.now, used.since_last, used.since_start) == ("used", 9, -1, 2)
    assert delta.elapsed_s == 4.0 and delta.tick == 3 and delta.changed


def test_keys_that_never_moved_and_are_gone_are_left_out() -> None:
    start = picture({"web": 1, "gone": 0})
    delta = compare(start, start, picture({"web": 1}), tick=2)
    assert [c.key for c in delta.counts] == ["web"]
    assert not delta.changed


def test_members_appear_and_end_since_last_and_since_start() -> None:
    a, b, c = {"pid 1": "pid 1 (a)"}, {"pid 2": "pid 2 (b)"}, {"pid 3": "pid 3 (c)"}
    start = picture({}, members={**a, **b})
    prev = picture({}, members={**b, **c})
    now = picture({}, members={**c})
    delta = compare(start, prev, now, tick=3)
    assert [m.key for m in delta.appeared] == []
    assert [m.label for m in delta.ended] == ["pid 2 (b)"]
    assert [m.key for m in delta.appeared_since_start] == ["pid 3"]
    assert [m.key for m in delta.ended_since_start] == ["pid 1", "pid 2"]


def test_watch_feeds_ticks_and_the_first_is_its_own_start() -> None:
    watch = Watch()
    first = watch.add(picture({"web": 2}, at=10.0))
    assert first.tick == 1 and not first.changed and first.elapsed_s == 0.0
    assert [(c.key, c.since_last, c.since_start) for c in first.counts] == [("web", 0, 0)]
    second = watch.add(picture({"web": 4}, at=12.0))
    third = watch.add(picture({"web": 1}, at=14.0))
    assert (second.counts[0].since_last, second.counts[0].since_start) == (2, 2)
    assert (third.counts[0].since_last, third.counts[0].since_start) == (-3, -1)
    assert third.tick == 3 and third.elapsed_s == 4.0


def test_findings_raised_and_cleared() -> None:
    one = Finding(Severity.WARNING, "idle_in_transaction", "worker", "m")
    two = Finding(Severity.CRITICAL, "capacity", "server", "m")
    base = picture({})
    prev = dataclasses.replace(base, findings={"idle_in_transaction [worker]": "warning"})
    now = dataclasses.replace(base, findings={"capacity [server]": "critical"})
    delta = compare(base, prev, now, tick=2)
    assert delta.findings_raised == ["capacity [server]"] and delta.findings_cleared == [
        "idle_in_transaction [worker]"
    ]
    assert one.code in delta.findings_cleared[0] and two.code in delta.findings_raised[0]


def test_connections_picture_is_the_reports_capacity_and_groups() -> None:
    report = analyze_connections(load_dataset(INCIDENT, "connections", ConnectionsData))
    p = connections_picture(report, 1.0)
    assert p.totals == {"used": report.capacity.clients, "usable": report.capacity.usable}
    assert p.counts == {g.key: g.total for g in report.groups} and sum(p.counts.values()) == p.totals["used"]
    assert set(p.findings) == {f"{f.code} [{f.subject}]" for f in report.findings}


def _session_gone(data: LocksData, pid: int) -> LocksData:
    """The lock snapshot after root blocker `pid` ended: its waiters' blocked_by lose it."""
    rows: list[ActivityRow] = []
    for row in data.activity:
        if row.pid == pid:
            continue
        blocked_by = [p for p in row.blocked_by if p != pid]
        kept = dataclasses.replace(row, blocked_by=blocked_by)
        if not blocked_by and row.wait_event_type == "Lock":
            kept = dataclasses.replace(kept, wait_event_type=None, wait_event=None, state="active")
        rows.append(kept)
    return dataclasses.replace(data, activity=rows, waits=[w for w in data.waits or [] if w.pid != pid])


def test_locks_picture_new_and_ended_blockers() -> None:
    data = load_dataset(LOCKS, "locks", LocksData)
    before = analyze_locks(data)
    assert before.roots, "the fixture has root blockers"
    root = next(r for r in before.roots if r.pid)
    after = analyze_locks(_session_gone(data, root.pid))
    p0, p1 = locks_picture(before, 0.0), locks_picture(after, 1.0)
    assert set(p0.members) == {f"pid {r.pid}" if r.pid else "prepared transaction" for r in before.roots}
    assert p0.counts[f"pid {root.pid}"] == root.blocks_total
    assert p0.totals["blockers"] == len(before.roots)
    delta = compare(p0, p0, p1, tick=2)
    assert f"pid {root.pid}" in {m.key for m in delta.ended}
    assert f"pid {root.pid}" in {m.key for m in delta.ended_since_start}
    # the other way round, the blocker appears
    back = compare(p1, p1, p0, tick=2)
    assert f"pid {root.pid}" in {m.key for m in back.appeared}
    line = summary_line(p0, back)
    assert f"new: pid {root.pid} (" in line


def test_pgbouncer_picture_clients_waiting_per_pool(tmp_path: Path) -> None:
    data = load_dataset(write_pgbouncer_snapshot(tmp_path / "s.json"), "pgbouncer", PgBouncerData)
    report = analyze_pgbouncer(data)
    p = pgbouncer_picture(report, 5.0)
    assert p.counts == {"app/web": 3} and p.totals["clients_waiting"] == 3
    drained = dataclasses.replace(p, counts={"app/web": 0}, totals={**p.totals, "clients_waiting": 0})
    delta = compare(p, p, drained, tick=2)
    assert [(c.key, c.now, c.since_last) for c in delta.counts] == [("app/web", 0, -3)]
    assert "clients_waiting=0 (-3, -3 since start)" in summary_line(drained, delta)


def test_summary_line_and_json_line() -> None:
    start = picture({"web": 1}, at=1_765_000_000.0)
    now = dataclasses.replace(
        picture({"web": 3, "a\x1bb": 1}, at=1_765_000_002.0), findings={"capacity [server]": "warning"}
    )
    delta = compare(start, start, now, tick=2)
    line = summary_line(now, delta)
    assert line.startswith("2025-12-06T05:46:42Z connections tick 2 | used/usable 4/97 (+3, +3 since start)")
    assert "web=3 (+2, +2 since start)" in line
    assert "a\\x1bb=1 (+1, +1 since start)" in line  # a control character in a name is drawn escaped
    assert "findings: capacity raised: capacity [server]" in line
    assert "\n" not in line
    payload = watch_json(now, delta, 2.0)
    json.dumps(payload)
    assert payload["tick"] == 2 and payload["interval_s"] == 2.0 and payload["elapsed_s"] == 2.0
    assert payload["totals"]["used"] == {"key": "used", "now": 4, "since_last": 3, "since_start": 3}
    assert {"key": "web", "now": 3, "since_last": 2, "since_start": 2} in payload["counts"]
    assert payload["findings_raised"] == ["capacity [server]"]


def test_summary_line_stays_a_line_with_many_applications() -> None:
    start = picture({})
    now = picture({f"app{i}": 1 for i in range(LINE_MAX_KEYS + 5)})
    line = summary_line(now, compare(start, start, now, tick=2))
    assert line.count("(+1, +1 since start)") == LINE_MAX_KEYS and "… +5 more" in line


def test_parse_interval() -> None:
    assert parse_interval("2s") == 2.0
    assert parse_interval("5") == 5.0
    assert parse_interval("500ms") == 0.5
    assert parse_interval("1m") == 60.0
    for bad in ("fast", "0.1", "2h", f"{MAX_WATCH_S + 1:g}", "-1"):
        with pytest.raises(PgDoctorError):
            parse_interval(bad)
    assert MIN_WATCH_S <= parse_interval(OPTIONAL_VALUES["--watch"]) <= MAX_WATCH_S


def test_optional_value_rewriting() -> None:
    opts = {"--watch"}
    assert with_optional_values(["--watch"], opts) == ["--watch=2s"]
    assert with_optional_values(["--watch", "-d", "x"], opts) == ["--watch=2s", "-d", "x"]
    assert with_optional_values(["--watch", "5"], opts) == ["--watch", "5"]
    assert with_optional_values(["--watch=7s"], opts) == ["--watch=7s"]
    assert with_optional_values(["-d", "x", "--", "--watch"], opts) == ["-d", "x", "--", "--watch"]
    assert with_optional_values(["--watch"], set()) == ["--watch"]


@pytest.mark.parametrize("command", ["connections", "locks", "pgbouncer"])
def test_watch_alone_with_a_value_from_the_environment_and_the_config(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("PGDOCTOR_WATCH", raising=False)
    assert parsed(command).params["watch"] is None
    assert parsed(command, "--watch").params["watch"] == "2s"
    assert parsed(command, "--watch", "5").params["watch"] == "5"
    ctx = parsed(command, "--watch", "-d", "x")
    assert (ctx.params["watch"], ctx.params["dsn"]) == ("2s", "x")
    monkeypatch.setenv("PGDOCTOR_WATCH", "3s")
    assert parsed(command).params["watch"] == "3s"
    assert parsed(command, "--watch", "4s").params["watch"] == "4s"
    monkeypatch.delenv("PGDOCTOR_WATCH")
    config = tmp_path / "pgdoctor.toml"
    config.write_text('[defaults]\nwatch = "6s"\n')
    config.chmod(0o600)
    assert parsed(command, "--config", str(config)).params["watch"] == "6s"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["connections", "--watch", "-s", str(INCIDENT)], "--watch: not with --snapshot"),
        (["connections", "--watch", "1", "--sample", "1s"], "--watch: not with --sample"),
        (["connections", "--watch", "--ps"], "--watch: not with --ps"),
        (["connections", "--watch", "-f", "csv"], "not with --format csv"),
        (["locks", "--watch", "-f", "markdown", "-d", "x"], "not with --format markdown"),
        (["pgbouncer", "--watch", "-f", "openmetrics", "-d", "x"], "not with --format openmetrics"),
        (["locks", "--watch", "-s", str(LOCKS)], "--watch: not with --snapshot"),
        (["pgbouncer", "--watch", "-s", str(INCIDENT)], "--watch: not with --snapshot"),
        (["connections", "--watch", "0.1", "-d", "x"], "invalid --watch '0.1'"),
        (["locks", "--watch", "soon", "-d", "x"], "invalid --watch 'soon'"),
    ],
)
def test_usage_errors(args: list[str], needle: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr


def test_the_screen_shows_changes_and_findings_above_the_report() -> None:
    import io

    from rich.console import Console

    from pgdoctor.render.connections import document
    from pgdoctor.render.watch import screen

    report = analyze_connections(load_dataset(INCIDENT, "connections", ConnectionsData))
    now = connections_picture(report, 1_765_000_010.0)
    start = dataclasses.replace(now, at=1_765_000_000.0, counts={}, findings={})
    delta = compare(start, start, now, tick=6)
    out = io.StringIO()
    Console(file=out, width=200, no_color=True).print(screen(document(report), now, delta, 2.0))
    text = out.getvalue()
    assert "--watch 2s · tick 6 at " in text and "10s since start · Ctrl-C to stop" in text
    changes, findings, title = (
        text.index("Changes (sessions per application)"),
        text.index("Findings"),
        text.index("pgdoctor connections: PostgreSQL"),
    )
    assert changes < findings < title
    assert report.findings and f"finding raised: {finding_key_of(report.findings[0])}" in text
    group = report.groups[0]
    assert any(
        line.split()[:4] == [group.key, str(group.total), f"+{group.total}", f"+{group.total}"]
        for line in text.splitlines()
    ), text


def finding_key_of(f: Finding) -> str:
    return f"{f.code} [{f.subject}]"
