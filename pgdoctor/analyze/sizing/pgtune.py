"""pgtune's published formulas (github.com/le0pard/pgtune, src/features/configuration/
configurationSlice.js), in kB as pgtune computes them, for a Linux server whose database is about as large
as its RAM (pgtune's default "DB size" choice)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pgdoctor.analyze.sizing.units import GB, KB, MB

_KB_GB = GB // KB
_KB_MB = MB // KB


def shared_buffers_kb(ram_kb: float, workload: str) -> int:
    return math.floor(ram_kb / 16) if workload == "desktop" else math.floor(ram_kb / 4)


def effective_cache_size_kb(ram_kb: float, workload: str) -> int:
    return math.floor(ram_kb / 4) if workload == "desktop" else math.floor(ram_kb * 3 / 4)


def maintenance_work_mem_kb(ram_kb: float, workload: str) -> int:
    value = math.floor(ram_kb / 8) if workload == "dw" else math.floor(ram_kb / 16)
    return min(value, 8 * _KB_GB)


def huge_pages(shared_buffers: int) -> str:
    return "try" if shared_buffers >= 2 * _KB_GB else "off"


def wal_buffers_kb(shared_buffers: int) -> int:
    """3% of shared_buffers, at most 16MB (16MB when close to it), at least 32kB."""
    value = min(math.floor(3 * shared_buffers / 100), 16 * _KB_MB)
    if 14 * _KB_MB < value < 16 * _KB_MB:
        value = 16 * _KB_MB
    return max(value, 32)


MIN_WAL_SIZE_MB = {"web": 1024, "oltp": 2048, "dw": 4096, "desktop": 100, "mixed": 1024}
MAX_WAL_SIZE_MB = {"web": 4096, "oltp": 8192, "dw": 16384, "desktop": 2048, "mixed": 4096}
CHECKPOINT_COMPLETION_TARGET = 0.9


def default_statistics_target(workload: str) -> int:
    return 500 if workload == "dw" else 100


def random_page_cost(storage: str, workload: str) -> float:
    """4 on spinning disks and, for data warehouses larger than RAM, on any storage; else 1.1."""
    return 4.0 if storage == "hdd" or workload == "dw" else 1.1


EFFECTIVE_IO_CONCURRENCY = {"hdd": 2, "ssd": 200, "san": 300, "nvme": 1000}


@dataclass(frozen=True)
class Parallel:
    max_worker_processes: int
    max_parallel_workers_per_gather: int
    max_parallel_workers: int
    max_parallel_maintenance_workers: int


def parallel(cpus: int | None, workload: str) -> Parallel | None:
    """pgtune sets parallel workers only with 4 or more CPUs."""
    if not cpus or cpus < 4:
        return None
    per_gather = math.ceil(cpus / 2)
    if workload != "dw":
        per_gather = min(per_gather, 4)
    return Parallel(cpus, per_gather, cpus, min(math.ceil(cpus / 2), 4))


def work_mem_kb(
    ram_kb: float, shared_buffers: int, connections: int, worker_processes: int, workload: str
) -> int:
    """(RAM - shared_buffers) / ((connections + worker processes) * 3), halved for dw/mixed, /6 for
    desktop, at least 4MB."""
    base = (ram_kb - shared_buffers) / ((connections + worker_processes) * 3)
    divisor = {"web": 1, "oltp": 1, "dw": 2, "mixed": 2, "desktop": 6}[workload]
    return max(math.floor(base / divisor), 4 * _KB_MB)


def autovacuum_max_workers(cpus: int | None) -> int | None:
    if not cpus:
        return None
    if cpus >= 32:
        return 5
    if cpus >= 16:
        return 4
    return None


def autovacuum_work_mem_kb(maintenance_work_mem: int) -> int | None:
    """Each autovacuum worker capped at 2GB once maintenance_work_mem reaches it."""
    return 2 * _KB_GB if maintenance_work_mem >= 2 * _KB_GB else None


def io_workers(pg_major: int, cpus: int | None) -> int | None:
    if pg_major < 18 or not cpus:
        return None
    value = min(32, max(3, cpus // 4))
    return value if value > 3 else None
