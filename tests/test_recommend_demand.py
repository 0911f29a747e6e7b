"""`recommend`'s demand without a server: a recorded incident snapshot (a leak of 127 idle connections,
12 stuck idle in transaction, 58 busy), the arithmetic of the topology it assumes, --app's forms, --ram's
ceiling, and that every sentence's figures agree with each other and with the JSON."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pgdoctor.analyze.sizing import pools
from pgdoctor.analyze.sizing.demand import AppDemand, Demand, apply, topology
from pgdoctor.analyze.sizing.pools import AppSpec
from pgdoctor.analyze.sizing.units import KB, TB, conf_bytes
from tests.conftest import FIXTURES, invoke

SNAPSHOT = str(FIXTURES / "incident-pg18.json")
CONNECTION_CODES = ("capacity", "idle_in_transaction", "idle_connections", "app_pool_saturated_likely")


def _json(*args: str) -> dict[str, Any]:
    result = invoke(*args, "-f", "json")
    assert result.exit_code in (0, 1), result.stderr
    return dict(json.loads(result.stdout))


def _findings(doc: dict[str, Any]) -> list[tuple[str, str, str, str, tuple[int, ...]]]:
    return sorted(
        (f["severity"], f["code"], f["subject"], f["message"], tuple(f.get("pids", ())))
        for f in doc["findings"]
        if f["code"] in CONNECTION_CODES
    )


def test_findings_are_connections_own_on_the_same_data() -> None:
    rec = _json("recommend", "--snapshot", SNAPSHOT, "--ram", "16G")
    conn = _json("connections", "--snapshot", SNAPSHOT)
    assert _findings(rec) == _findings(conn)
    assert {f[1] for f in _findings(rec)} >= {"capacity", "idle_in_transaction", "idle_connections"}


def test_leaked_and_stuck_connections_are_not_demand() -> None:
    doc = _json("recommend", "--snapshot", SNAPSHOT, "--ram", "16G")
    apps = {a["name"]: a for a in doc["demand"]["apps"]}
    assert (apps["data_loader_worker"]["seen"], apps["data_loader_worker"]["not_demand"]) == (127, 127)
    assert (apps["training_manager"]["seen"], apps["training_manager"]["not_demand"]) == (12, 12)
    assert apps["feature_service"]["peak"] == apps["feature_service"]["needed"] == 58
    # max_connections is not grown for the leak: pgtune's 200 (the running server has 205), no PgBouncer
    # sized on the leak's account, and the reason says the leak is left out
    assert doc["pools"]["max_connections"] == 200
    needed = sum(a["processes"] * a["threads"] for a in doc["pools"]["apps"])
    assert needed == 58 + 3 + 1 + 1
    assert "139 connection(s) seen leaked" in doc["pools"]["pgbouncer_reason"]
    pool = {a["name"]: a for a in doc["pools"]["apps"]}
    assert pool["data_loader_worker"]["total"] <= 2
    assert pool["feature_service"]["pool_size"] >= 58  # never below what it used at once


def test_sentences_agree_with_each_other_and_the_json() -> None:
    args = ("recommend", "--snapshot", SNAPSHOT, "--ram", "16G")
    doc = _json(*args)
    text = invoke(*args, "-f", "plain").stdout
    p = doc["pools"]
    needed = sum(a["processes"] * a["threads"] for a in p["apps"])
    said = f"{needed} needed at once; their pools open at most {p['client_total']}"
    assert said in text
    assert f"the applications need {needed} connections at once; their pools open at most " in text
    assert f"total {p['client_total']} of {p['server_budget']} usable server slots" in text
    assert "RAM unknown" not in text and "RAM RAM" not in text
    offline = invoke("recommend", "--cpus", "4", "--snapshot", SNAPSHOT, "-f", "plain").stdout
    assert "RAM not given" in offline.splitlines()[0]


def test_given_app_never_sized_below_what_it_used() -> None:
    doc = _json("recommend", "--snapshot", SNAPSHOT, "--ram", "16G", "--app", "feature_service=2x4")
    (f,) = [f for f in doc["findings"] if f["code"] == "app_uses_more"]
    assert "58 were in use at once" in f["message"]
    (app,) = doc["pools"]["apps"]
    assert (app["processes"], app["threads"]) == (2, 29)


def test_async_app_syntax_and_engine() -> None:
    doc = _json(
        "recommend", "--ram", "16G", "--cpus", "8", "--app", "gpustack=3xasync:20", "--app", "web=2x4"
    )
    assert [(a["name"], a["kind"]) for a in doc["inputs"]["apps"]] == [
        ("gpustack", "async"),
        ("web", "threads"),
    ]
    assert [a["kind"] for a in doc["pools"]["apps"]] == ["async", "threads"]
    text = invoke("recommend", "--ram", "16G", "--app", "gpustack=3xasync:20", "-f", "sqlalchemy").stdout
    assert "gpustack_engine = create_async_engine(DATABASE_URL, pool_size=20" in text
    assert "from sqlalchemy import create_engine" not in text
    for bad in ("gpustack=3xasync", "gpustack=3xasync:0", "gpustack=3xthreads:4", "=3"):
        result = invoke("recommend", "--ram", "16G", "--app", bad)
        assert result.exit_code == 2, bad
        assert result.stderr.startswith("error: --app") and result.stderr.count("\n") == 1, result.stderr


def test_ram_beyond_what_postgresql_can_use_is_refused() -> None:
    for ram in ("99999999999999999999T", "17T", "16385G"):
        result = invoke("recommend", "--ram", ram)
        assert result.exit_code == 2, ram
        assert result.stderr.count("\n") == 1 and "beyond what PostgreSQL" in result.stderr, result.stderr
    doc = _json(
        "recommend", "--ram", "16T", "--cpus", "64", "--workload", "desktop", "--max-connections", "5"
    )
    values = {s["name"]: s["value"] for s in doc["settings"]}
    # pg_settings.max_val: shared_buffers 2^30 - 1 pages, effective_cache_size 2^31 - 1 pages, the
    # work_mem family 2^31 - 1 kB
    assert conf_bytes(values["shared_buffers"]) <= (2**30 - 1) * 8 * KB  # type: ignore[operator]
    assert conf_bytes(values["effective_cache_size"]) <= (2**31 - 1) * 8 * KB  # type: ignore[operator]
    for name in ("work_mem", "maintenance_work_mem"):
        assert conf_bytes(values[name]) <= (2**31 - 1) * KB, name  # type: ignore[operator]
    assert doc["inputs"]["ram_bytes"] == 16 * TB


def test_sample_needs_a_live_server() -> None:
    for args in (("--ram", "4G", "--sample", "5s"), ("--snapshot", SNAPSHOT, "--sample", "5s")):
        result = invoke("recommend", *args)
        assert result.exit_code == 2 and "--sample reads a live server" in result.stderr
    # a bad duration is refused before anything connects (nothing listens on port 1)
    result = invoke("recommend", "-d", "host=127.0.0.1 port=1", "--sample", "forever")
    assert result.exit_code == 2 and "--sample" in result.stderr


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["10.0.0.1", "10.0.0.2", "local socket"]), st.integers(1, 400), min_size=1
    )
)
def test_assumed_topology_never_below_what_was_in_use(per_address: dict[str, int]) -> None:
    """However the processes are read (a known pool's ceiling, else one process per address), the pools
    planned from them hold at least every connection seen in use."""
    processes, per_process, how = topology(per_address)
    peak = sum(per_address.values())
    assert processes * per_process >= peak
    assert how.count("read as") == len(per_address)
    d = AppDemand("app", len(per_address), peak, 0, peak, processes, how, needed=peak)
    assert d.processes * d.per_process >= peak
    plan = pools.plan([d.spec()], cpus=8)
    (app,) = plan.apps
    assert app.processes * app.per_process >= peak
    assert app.per_process >= math.ceil(peak / processes)


def _measured(name: str, peak: int, needed: int, processes: int = 3) -> Demand:
    app = AppDemand(name, 1, peak, 0, peak, processes, "", needed=needed, busy=needed / 1.5)
    return Demand("sample", 5.0, [app])


def test_async_tasks_capped_by_the_measured_need_threads_floored_by_use() -> None:
    """An asyncio application's pool is what the sample measured, up to its tasks (100 tasks sharing a
    pool of 10 are not 100 threads); a threaded one keeps its threads, raised to what it used at once."""
    given = [AppSpec("gpu", 3, 100, kind="async")]
    (spec,), found = apply(given, _measured("gpu", 45, 68))
    assert (spec.processes, spec.threads, spec.kind, found) == (3, 23, "async", [])
    (spec,), _ = apply([AppSpec("gpu", 3, 20, kind="async")], _measured("gpu", 45, 68))
    assert spec.threads == 20  # never more than the tasks that use the database at once
    (spec,), found = apply([AppSpec("web", 3, 4)], _measured("web", 45, 68))
    assert spec.threads == 15 and [f.code for f in found] == ["app_uses_more"]
    (spec,), found = apply([AppSpec("web", 3, 30)], _measured("web", 45, 68))
    assert spec.threads == 30 and found == []
