"""The worst case: what the server may allocate at once, against the machine's RAM.

shared_buffers is allocated at start. Each backend may use work_mem per sort or hash node, hash nodes up
to work_mem * hash_mem_multiplier ("Resource Consumption" in the PostgreSQL docs); parallel workers are
backends too. Each autovacuum worker may use autovacuum_work_mem (or maintenance_work_mem when that is -1).
The check counts one hash-sized allocation per backend and per parallel worker: a floor for the worst
case (a query with several sort/hash nodes uses several), which is why pgtune divides by 3.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgdoctor.analyze.findings import Finding, Severity
from pgdoctor.analyze.sizing.units import format_bytes

HEADROOM_WARN_PCT = 10.0  # less than this share of RAM left for the OS, page cache and connections' own


@dataclass(frozen=True)
class MemoryCheck:
    ram_bytes: int | None
    shared_buffers_bytes: int
    wal_buffers_bytes: int
    work_mem_bytes: int
    hash_mem_multiplier: float
    backends: int  # max_connections + max_parallel_workers
    work_mem_total_bytes: int
    autovacuum_workers: int
    autovacuum_mem_bytes: int  # per worker
    autovacuum_total_bytes: int
    worst_case_bytes: int
    headroom_bytes: int | None
    headroom_pct: float | None


def check(
    *,
    ram_bytes: int | None,
    shared_buffers_bytes: int,
    wal_buffers_bytes: int,
    work_mem_bytes: int,
    hash_mem_multiplier: float,
    max_connections: int,
    max_parallel_workers: int,
    autovacuum_workers: int,
    autovacuum_mem_bytes: int,
) -> MemoryCheck:
    backends = max_connections + max_parallel_workers
    work_total = int(backends * work_mem_bytes * hash_mem_multiplier)
    av_total = autovacuum_workers * autovacuum_mem_bytes
    worst = shared_buffers_bytes + wal_buffers_bytes + work_total + av_total
    headroom = None if ram_bytes is None else ram_bytes - worst
    return MemoryCheck(
        ram_bytes=ram_bytes,
        shared_buffers_bytes=shared_buffers_bytes,
        wal_buffers_bytes=wal_buffers_bytes,
        work_mem_bytes=work_mem_bytes,
        hash_mem_multiplier=hash_mem_multiplier,
        backends=backends,
        work_mem_total_bytes=work_total,
        autovacuum_workers=autovacuum_workers,
        autovacuum_mem_bytes=autovacuum_mem_bytes,
        autovacuum_total_bytes=av_total,
        worst_case_bytes=worst,
        headroom_bytes=headroom,
        headroom_pct=None
        if ram_bytes is None or headroom is None
        else round(100.0 * headroom / ram_bytes, 1),
    )


def describe(m: MemoryCheck) -> str:
    """One line: the sum and its parts."""
    parts = (
        f"shared_buffers {format_bytes(m.shared_buffers_bytes)} + wal_buffers "
        f"{format_bytes(m.wal_buffers_bytes)} + {m.backends} backends x work_mem "
        f"{format_bytes(m.work_mem_bytes)} x hash_mem_multiplier "
        f"{m.hash_mem_multiplier:g} = {format_bytes(m.work_mem_total_bytes)} + {m.autovacuum_workers} "
        f"autovacuum workers x {format_bytes(m.autovacuum_mem_bytes)}"
    )
    total = f"worst case {format_bytes(m.worst_case_bytes)}"
    if m.ram_bytes is None:
        return f"{total} ({parts}); RAM unknown (give --ram)"
    return (
        f"{total} of {format_bytes(m.ram_bytes)} RAM, headroom {format_bytes(m.headroom_bytes or 0)} "
        f"({m.headroom_pct:g}%) ({parts})"
    )


def findings(m: MemoryCheck, *, code: str, subject: str, what: str) -> list[Finding]:
    """critical when the worst case exceeds RAM, warning when it leaves under 10% of it."""
    if m.ram_bytes is None or m.headroom_pct is None:
        return []
    if m.worst_case_bytes > m.ram_bytes:
        severity = Severity.CRITICAL
        message = f"{what} can allocate more than the RAM: {describe(m)}"
    elif m.headroom_pct < HEADROOM_WARN_PCT:
        severity = Severity.WARNING
        message = f"{what} leaves under {HEADROOM_WARN_PCT:g}% of RAM: {describe(m)}"
    else:
        return []
    return [
        Finding(
            severity,
            code,
            subject,
            message,
            "lower work_mem or max_connections (PgBouncer keeps the server side small), or add RAM; the "
            "kernel's OOM killer ends a backend and the server restarts every session",
        )
    ]
