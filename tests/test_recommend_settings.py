"""The settings formulas across a grid of RAM x CPUs x workloads x storage, against pgtune's.

`pgtune_reference` restates pgtune's published formulas (le0pard/pgtune,
src/features/configuration/configurationSlice.js: Linux, DB size about RAM) in bytes rather than kB,
so a slip in pgdoctor's kB arithmetic or unit formatting shows up as a mismatch.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from pgdoctor.analyze.choices import Storage, Workload
from pgdoctor.analyze.recommend import Inputs, analyze
from pgdoctor.analyze.sizing import pgtune, settings
from pgdoctor.analyze.sizing.pools import AppSpec
from pgdoctor.analyze.sizing.units import GB, KB, MB, TB, conf_bytes
from tests.conftest import invoke

RAMS = [512 * MB, 1 * GB, 2 * GB, 3 * GB, 4 * GB, 8 * GB, 16 * GB, 24 * GB, 64 * GB, 128 * GB, 384 * GB, TB]
CPUS: list[int | None] = [None, 1, 2, 3, 4, 6, 8, 12, 16, 31, 32, 64, 96]
WORKLOADS = [w.value for w in Workload]
STORAGE = [s.value for s in Storage]


def pgtune_reference(ram: int, cpus: int | None, workload: str, storage: str, version: int) -> dict[str, Any]:
    """pgtune's outputs for these inputs: sizes in bytes, rounded down to whole kB as pgtune does."""
    connections = {"web": 200, "oltp": 300, "dw": 40, "desktop": 20, "mixed": 100}[workload]
    kb = KB

    def whole_kb(n: float) -> int:
        return int(n // kb) * kb

    sb = whole_kb(ram / 16) if workload == "desktop" else whole_kb(ram / 4)
    out: dict[str, Any] = {
        "max_connections": connections,
        "shared_buffers": sb,
        "effective_cache_size": whole_kb(ram / 4) if workload == "desktop" else whole_kb(ram * 3 / 4),
        "maintenance_work_mem": min(whole_kb(ram / 8) if workload == "dw" else whole_kb(ram / 16), 8 * GB),
        "huge_pages": "try" if sb >= 2 * GB else "off",
        "min_wal_size": {"web": 1024, "oltp": 2048, "dw": 4096, "desktop": 100, "mixed": 1024}[workload] * MB,
        "max_wal_size": {"web": 4096, "oltp": 8192, "dw": 16384, "desktop": 2048, "mixed": 4096}[workload]
        * MB,
        "checkpoint_completion_target": 0.9,
        "default_statistics_target": 500 if workload == "dw" else 100,
        "random_page_cost": 4.0 if storage == "hdd" or workload == "dw" else 1.1,
        "effective_io_concurrency": {"hdd": 2, "ssd": 200, "san": 300, "nvme": 1000}[storage],
    }
    wal = whole_kb(sb * 3 / 100)
    wal = min(wal, 16 * MB)
    if 14 * MB < wal < 16 * MB:
        wal = 16 * MB
    out["wal_buffers"] = max(wal, 32 * KB)
    workers = 8
    if cpus is not None and cpus >= 4:
        workers = cpus
        half = -(-cpus // 2)
        out["max_worker_processes"] = cpus
        out["max_parallel_workers_per_gather"] = half if workload == "dw" else min(half, 4)
        out["max_parallel_workers"] = cpus
        out["max_parallel_maintenance_workers"] = min(half, 4)
    per = (ram - sb) / ((connections + workers) * 3)
    per_kb = per / kb
    per_kb = {"web": per_kb, "oltp": per_kb, "dw": per_kb / 2, "mixed": per_kb / 2, "desktop": per_kb / 6}[
        workload
    ]
    out["work_mem"] = max(int(per_kb) * kb, 4 * MB)
    if cpus:
        if cpus >= 32:
            out["autovacuum_max_workers"] = 5
        elif cpus >= 16:
            out["autovacuum_max_workers"] = 4
    if out["maintenance_work_mem"] >= 2 * GB:
        out["autovacuum_work_mem"] = 2 * GB
    if workload in ("web", "oltp", "mixed"):
        out["jit"] = "off"
    if version >= 18 and cpus and min(32, max(3, cpus // 4)) > 3:
        out["io_workers"] = min(32, cpus // 4)
    if workload == "desktop":
        out["wal_level"] = "minimal"
        out["max_wal_senders"] = 0
    return out


def as_comparable(name: str, value: str) -> Any:
    size = conf_bytes(value)
    if size is not None:
        return size
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


GRID = list(itertools.product(RAMS, CPUS, WORKLOADS))


@pytest.mark.parametrize(
    ("ram", "cpus", "workload"), GRID, ids=[f"{r // MB}MB-{c}cpu-{w}" for r, c, w in GRID]
)
def test_settings_agree_with_pgtune(ram: int, cpus: int | None, workload: str) -> None:
    for storage, version in (("ssd", 18), ("hdd", 15), ("nvme", 13), ("san", 17)):
        report = analyze(Inputs(ram, cpus, storage, workload, pg_version=version))
        ours = {s.name: s.value for s in report.settings}
        reasons = {s.name: s.reason for s in report.settings}
        expected = pgtune_reference(ram, cpus, workload, storage, version)
        for name, value in expected.items():
            assert name in ours, (name, storage, version)
            got = ours[name]
            assert got is not None
            if name == "work_mem" and "capped from" in reasons[name]:
                # deliberately below pgtune: its figure would leave under 10% of the RAM in the worst case
                assert as_comparable(name, got) < value
                assert report.memory is not None and report.memory.headroom_pct is not None
                # it fits with 10% to spare, or it is down to the 4MB floor and still reported
                assert report.memory.headroom_pct >= 10.0 or (
                    as_comparable(name, got) == 4 * MB
                    and any(f.code == "memory_overcommit" for f in report.findings)
                )
                continue
            assert as_comparable(name, got) == value, (name, got, value, storage, version)
        if as_comparable("work_mem", ours["work_mem"] or "") > 4 * MB:
            # above the 4MB floor the recommendation always passes its own memory check
            assert not any(f.code == "memory_overcommit" for f in report.findings), (storage, version)
        # nothing parallel, autovacuum or io-worker related that pgtune would not set
        for name in (
            "max_worker_processes",
            "autovacuum_max_workers",
            "autovacuum_work_mem",
            "io_workers",
            "jit",
        ):
            assert (name in ours) == (name in expected), name
        # no pool inputs: pgdoctor's max_connections and work_mem are pgtune's, and say so
        by_name = {s.name: s for s in report.settings}
        assert not by_name["max_connections"].differs_from_pgtune
        capped = "capped from" in by_name["work_mem"].reason
        assert by_name["work_mem"].differs_from_pgtune == capped
        assert by_name["work_mem"].reason.startswith("pgtune's formula:")


def test_published_pgtune_parallel_examples() -> None:
    """pgtune's own test cases (selectParallelSettings)."""
    p = pgtune.parallel(12, "web")
    assert p == pgtune.Parallel(12, 4, 12, 4)
    p = pgtune.parallel(31, "dw")
    assert p == pgtune.Parallel(31, 16, 31, 4)
    assert pgtune.parallel(1, "web") is None
    assert pgtune.parallel(3, "dw") is None


def test_work_mem_follows_the_real_connection_budget_and_says_so() -> None:
    apps = (AppSpec("training", 1000), AppSpec("feature_service", 16, 4))
    pgtune_like = analyze(Inputs(128 * GB, 32, "ssd", "web"))
    pooled = analyze(Inputs(128 * GB, 32, "ssd", "web", apps=apps))
    mine = {s.name: s for s in pooled.settings}
    assert pooled.pools.pgbouncer is not None
    assert mine["max_connections"].differs_from_pgtune
    assert mine["work_mem"].differs_from_pgtune
    assert "real connection budget" in mine["work_mem"].reason
    budget = pooled.pools.work_mem_connections
    assert budget < 200
    sb_kb = 32 * 1024 * 1024
    expected_kb = int((128 * 1024 * 1024 - sb_kb) / ((budget + 32) * 3))
    assert conf_bytes(mine["work_mem"].value or "") == expected_kb * KB
    base = {s.name: s.value for s in pgtune_like.settings}
    # fewer connections that can run at once: more memory for each
    assert (conf_bytes(mine["work_mem"].value or "") or 0) > (conf_bytes(base["work_mem"] or "") or 0)


def test_build_dependent_values_only_when_the_server_has_them() -> None:
    offline = {s.name: s for s in analyze(Inputs(16 * GB, 8, pg_version=18)).settings}
    assert offline["wal_compression"].value == "pglz"
    assert offline["wal_compression"].differs_from_pgtune
    assert "io_method" not in offline
    older = {s.name: s.value for s in analyze(Inputs(16 * GB, 8, pg_version=14)).settings}
    assert older["wal_compression"] == "on"
    with_lz4 = settings.recommend(
        settings.Hardware(16 * GB, 8, "ssd", "web", 18),
        max_connections=200,
        max_connections_reason="",
        work_mem_connections=200,
        work_mem_reason="",
        build=settings.Build(
            wal_compression=("pglz", "lz4", "on", "off"), io_method=("sync", "worker", "io_uring")
        ),
    )
    values = {r.name: r.value for r in with_lz4.recs}
    assert values["wal_compression"] == "lz4"
    assert values["io_method"] == "io_uring"


def test_memory_check_adds_up_and_flags_overcommit() -> None:
    report = analyze(Inputs(128 * GB, 32, "ssd", "web"))
    m = report.memory
    assert m is not None
    wm = conf_bytes(next(s.value for s in report.settings if s.name == "work_mem") or "")
    assert m.work_mem_bytes == wm
    assert m.backends == 200 + 32
    assert m.work_mem_total_bytes == int(232 * m.work_mem_bytes * 2.0)
    assert m.autovacuum_total_bytes == 5 * 2 * GB
    assert m.worst_case_bytes == 32 * GB + 16 * MB + m.work_mem_total_bytes + m.autovacuum_total_bytes
    assert m.worst_case_bytes < 128 * GB
    assert not [f for f in report.findings if f.code == "memory_overcommit"]
    # the incident: 500 connections on a small box: the 4MB floor of work_mem cannot fit
    squeezed = analyze(Inputs(1 * GB, 4, "ssd", "web", max_connections=500))
    over = [f for f in squeezed.findings if f.code == "memory_overcommit"]
    assert squeezed.memory is not None
    assert squeezed.memory.worst_case_bytes > 1 * GB
    assert [f.severity.value for f in over] == ["critical"]
    assert over[0].subject == "recommended"


def test_json_contract_offline() -> None:
    result = invoke("recommend", "--ram", "128G", "--cpus", "32", "--app", "training=1000", "-f", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["command"] == "recommend"
    assert doc["server"] is None
    assert doc["inputs"]["ram_bytes"] == 128 * GB
    assert doc["inputs"]["apps"] == [{"name": "training", "processes": 1000, "threads": 1, "kind": "threads"}]
    for s in doc["settings"]:
        assert set(s) >= {"name", "value", "current", "reason"}
        assert s["current"] is None
        assert s["reason"]
    names = [s["name"] for s in doc["settings"]]
    assert names[:6] == [
        "max_connections",
        "superuser_reserved_connections",
        "shared_buffers",
        "effective_cache_size",
        "maintenance_work_mem",
        "work_mem",
    ]
    pools = doc["pools"]
    assert pools["server_budget"] == pools["max_connections"] - pools["superuser_reserved_connections"]
    assert pools["pgbouncer"]["pool_mode"] == "transaction"
    assert pools["pgbouncer"]["default_pool_size"] == 64
    assert pools["apps"][0]["name"] == "training"
    assert pools["apps"][0]["processes"] == 1000
    assert {"pool_size", "max_overflow"} <= set(pools["apps"][0])
    assert doc["memory"]["ram_bytes"] == 128 * GB
    assert 0 < doc["memory"]["worst_case_bytes"] < 128 * GB
    assert doc["findings"] == []
