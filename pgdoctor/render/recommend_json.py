"""`pgdoctor recommend --format json`: the documented JSON contract (README, "JSON")."""

from __future__ import annotations

from typing import Any

from pgdoctor.analyze.recommend import RecommendReport
from pgdoctor.analyze.sizing.memory import MemoryCheck
from pgdoctor.analyze.sizing.pgbouncer_compare import BouncerComparison
from pgdoctor.render import recommend_text as emit
from pgdoctor.render.common import server_json


def memory_json(m: MemoryCheck | None) -> dict[str, Any] | None:
    if m is None:
        return None
    return {
        "worst_case_bytes": m.worst_case_bytes,
        "ram_bytes": m.ram_bytes,
        "headroom_bytes": m.headroom_bytes,
        "headroom_pct": m.headroom_pct,
        "shared_buffers_bytes": m.shared_buffers_bytes,
        "wal_buffers_bytes": m.wal_buffers_bytes,
        "work_mem_bytes": m.work_mem_bytes,
        "hash_mem_multiplier": m.hash_mem_multiplier,
        "backends": m.backends,
        "work_mem_total_bytes": m.work_mem_total_bytes,
        "autovacuum_workers": m.autovacuum_workers,
        "autovacuum_mem_bytes": m.autovacuum_mem_bytes,
        "autovacuum_total_bytes": m.autovacuum_total_bytes,
    }


def pgbouncer_current_json(cmp: BouncerComparison | None) -> dict[str, Any] | None:
    if cmp is None:
        return None
    return {
        "version": cmp.version,
        "settings": [
            {
                "name": s.name,
                "value": s.value,
                "current": s.current,
                "changes": s.changes,
                "restart": s.restart,
            }
            for s in cmp.settings
        ],
        "databases": [
            {
                "name": d.name,
                "pool_size": d.pool_size,
                "reserve_pool": d.reserve_pool,
                "max_db_connections": d.max_db_connections,
                "pool_mode": d.pool_mode,
                "overrides": list(d.overrides),
                "changes": list(d.changes),
            }
            for d in cmp.databases
        ],
        "server_connections": cmp.server_connections,
        "postgres_usable": cmp.postgres_usable,
    }


def to_json(report: RecommendReport) -> dict[str, Any]:
    i, p, b = report.inputs, report.pools, report.pools.pgbouncer
    return {
        "command": "recommend",
        "server": server_json(report.server) if report.server else None,
        "inputs": {
            "ram_bytes": i.ram_bytes,
            "cpus": i.cpus,
            "cpus_assumed": p.cpus if p.cpus_assumed else None,
            "storage": i.storage,
            "workload": i.workload,
            "pg_version": report.pg_major,
            "max_connections": i.max_connections,
            "pgbouncer": i.pgbouncer,
            "databases": i.databases,
            "apps_source": report.apps_source,
            "apps": [
                {"name": a.name, "processes": a.processes, "threads": a.threads, "kind": a.kind}
                for a in p.apps
            ],
        },
        "settings": [
            {
                "name": s.name,
                "value": s.value,
                "current": s.current,
                "reason": s.reason,
                "per_role": s.per_role,
                "differs_from_pgtune": s.differs_from_pgtune,
                "context": s.context,
                "restart": s.restart,
                "pending_restart": s.pending_restart,
                "changes": s.changes,
            }
            for s in report.settings
        ],
        "pools": {
            "server_budget": p.usable,
            "max_connections": p.max_connections,
            "superuser_reserved_connections": p.superuser_reserved,
            "reserved_connections": p.reserved_connections,
            "cpu_pool": p.cpu_pool,
            "work_mem_connections": p.work_mem_connections,
            "client_total": p.client_total,
            "fits": p.fits,
            "pgbouncer_reason": p.pgbouncer_reason,
            "pgbouncer": None
            if b is None
            else {
                "pool_mode": b.pool_mode,
                "default_pool_size": b.default_pool_size,
                "reserve_pool_size": b.reserve_pool_size,
                "reserve_pool_timeout": b.reserve_pool_timeout,
                "max_client_conn": b.max_client_conn,
                "max_db_connections": b.max_db_connections,
                "server_idle_timeout": b.server_idle_timeout,
                "databases": b.databases,
                "server_total": b.server_total,
            },
            "apps": [
                {
                    "name": a.name,
                    "processes": a.processes,
                    "threads": a.threads,
                    "observed": a.observed,
                    "poolclass": a.poolclass,
                    "pool_size": a.pool_size,
                    "max_overflow": a.max_overflow,
                    "pool_timeout": a.pool_timeout,
                    "pool_recycle": a.pool_recycle,
                    "pool_pre_ping": a.pool_pre_ping,
                    "per_process": a.per_process,
                    "total": a.total,
                    "create_engine": emit.engine_kwargs(a),
                    "kind": a.kind,
                    "django": emit.django_settings(a),
                }
                for a in p.apps
            ],
        },
        "memory": memory_json(report.memory),
        "current_memory": memory_json(report.current_memory),
        "pgbouncer_current": pgbouncer_current_json(report.pgbouncer_current),
        "findings": [f.to_json() for f in report.findings],
        "demand": demand_json(report),
    }


def demand_json(report: RecommendReport) -> dict[str, Any] | None:
    d = report.demand
    if d is None:
        return None
    return {
        "source": d.source,
        "window_s": d.window_s,
        "busiest_database": d.busiest,
        "server_busy": d.server_busy,
        "server_needed": d.server_needed,
        "server_needed_fixed": d.server_needed_fixed,
        "apps": [
            {
                "name": a.name,
                "clients": a.clients,
                "seen": a.seen,
                "not_demand": a.not_demand,
                "peak": a.peak,
                "processes": a.processes,
                "per_process": a.per_process,
                "topology": a.topology,
                "needed": a.needed,
                "xacts_per_s": a.xacts_per_s,
                "xact_s": a.xact_s,
                "idle_share": a.idle_share,
                "busy": a.busy,
                "busy_fixed": a.busy_fixed,
                "needed_fixed": a.needed_fixed,
            }
            for a in d.apps
        ],
    }
