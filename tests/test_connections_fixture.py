"""Analysis and rendering of the recorded incident (fixtures/incident-pg*.json), without a server."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pytest

from pgdoctor.analyze.connections import analyze
from pgdoctor.collect.connections import ConnectionsData
from pgdoctor.render import connections as render
from pgdoctor.render.document import emit
from pgdoctor.render.formats import Format
from pgdoctor.snapshot import load_dataset
from tests.conftest import FIXTURES, invoke

INCIDENTS = sorted(FIXTURES.glob("incident-pg*.json"))


@pytest.fixture(params=INCIDENTS, ids=[p.stem for p in INCIDENTS])
def incident(request: pytest.FixtureRequest) -> ConnectionsData:
    path: Path = request.param
    return load_dataset(path, "connections", ConnectionsData)


def test_both_versions_are_recorded() -> None:
    assert [p.name for p in INCIDENTS] == ["incident-pg15.json", "incident-pg18.json"]


def test_the_picture(incident: ConnectionsData) -> None:
    report = analyze(incident)
    cap = report.capacity
    assert (cap.usable, cap.clients, cap.slots_left, cap.usage_pct) == (200, 200, 0, 100.0)
    if incident.server.major >= 16:
        assert cap.reserved_connections == 2
    groups = {g.key: g for g in report.groups}
    assert [g.key for g in report.groups] == [
        "data_loader_worker",
        "feature_service",
        "training_manager",
        "job_api",
    ]
    assert groups["data_loader_worker"].counts["idle"] == 127
    assert groups["feature_service"].counts["active"] == 58
    assert groups["training_manager"].counts["idle_in_transaction"] == 12
    assert groups["job_api"].counts["blocked"] == 3
    assert (groups["training_manager"].oldest_idle_in_transaction_s or 0) > 60

    findings = {(f.code, f.subject): f for f in report.findings}
    assert findings[("capacity", "server")].severity.value == "critical"
    leak = findings[("idle_connections", "data_loader_worker")]
    assert len(leak.pids) == 127
    idle_xact = findings[("idle_in_transaction", "training_manager")]
    assert idle_xact.severity.value == "critical" and len(idle_xact.pids) == 12
    blocked = findings[("blocked", "job_api")]
    holder = next(s for s in report.sessions if "UPDATE jobs SET status = 'training'" in (s.query or ""))
    assert f"root blocker(s): {holder.pid} (training_manager, idle in transaction)" in blocked.message
    assert report.findings[0].code == "capacity"  # the saturation comes first


def test_thresholds_change_the_findings(incident: ConnectionsData) -> None:
    quiet = analyze(incident, idle_xact_warn_s=10_000, leak_min_idle=1000, capacity_warn_pct=101)
    codes = {f.code for f in quiet.findings}
    assert "idle_connections" not in codes and "capacity" not in codes
    assert "idle_in_transaction" in codes  # the holder blocks others whatever the age threshold


@pytest.mark.parametrize("fmt", [Format.TABLE, Format.PLAIN, Format.MARKDOWN, Format.CSV])
def test_renders_in_every_format(incident: ConnectionsData, fmt: Format) -> None:
    out = io.StringIO()
    emit(render.document(analyze(incident), show_sessions=False), fmt, out)
    text = out.getvalue()
    assert "data_loader_worker" in text
    if fmt is not Format.CSV:
        assert "200 of 200 usable slots" in text
        assert "CRITICAL capacity" in text


def test_json_contract(incident: ConnectionsData) -> None:
    doc = render.to_json(analyze(incident))
    json.dumps(doc)  # serialisable
    assert set(doc["capacity"]) >= {
        "max_connections", "superuser_reserved_connections", "reserved_connections",
        "usable", "clients", "usage_pct",
    }  # fmt: skip
    assert set(doc["groups"][0]) >= {
        "key", "total", "active", "idle", "idle_in_transaction", "idle_in_transaction_aborted",
        "blocked", "other",
    }  # fmt: skip
    assert set(doc["sessions"][0]) >= {
        "pid", "application_name", "usename", "datname", "class", "state_age_s", "xact_age_s", "blocked_by"
    }  # fmt: skip
    assert set(doc["findings"][0]) >= {"severity", "code", "subject", "message", "pids"}
    assert len(doc["sessions"]) == 200


def test_fail_on_exit_codes() -> None:
    path = str(INCIDENTS[0])
    assert invoke("connections", "--snapshot", path).exit_code == 0
    assert invoke("connections", "--snapshot", path, "--fail-on", "critical").exit_code == 1
    assert invoke("connections", "--snapshot", path, "--fail-on", "warning").exit_code == 1
    assert invoke("connections", "--snapshot", path, "--fail-on", "bogus").exit_code == 2


def test_capacity_highlighting_follows_the_threshold(incident: ConnectionsData) -> None:
    """The capacity line is coloured as the analysis judged it (--capacity-warn-pct), not by a number of
    the renderer's own: at 85 % of the slots it is yellow at the default 80, green at 90."""
    clients = [r for r in incident.activity if r.backend_type == "client backend"]
    dropped = {r.pid for r in clients[:30]}
    data = replace(incident, activity=[r for r in incident.activity if r.pid not in dropped])
    report = analyze(data)
    assert (report.capacity.usage_pct, report.capacity.slots_left) == (85.0, 30)
    assert render.capacity_line(report).style == "yellow"
    assert render.capacity_line(analyze(data, capacity_warn_pct=90)).style == "green"
    assert render.capacity_line(analyze(data, capacity_warn_pct=50)).style == "yellow"
    assert render.capacity_line(analyze(incident)).style == "bold red"  # no slot left
