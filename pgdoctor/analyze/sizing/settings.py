"""PostgreSQL settings for given hardware: pgtune's published formulas, and where pgdoctor differs, why.

The memory, WAL, planner and parallel formulas follow pgtune (github.com/le0pard/pgtune,
src/features/configuration/configurationSlice.js) for a Linux server whose database is about as large as
its RAM (pgtune's default "DB size" choice). pgdoctor differs deliberately in three places, each said in
the setting's reason and in the README:
- `max_connections` and the connection count in `work_mem` come from the pool arithmetic (the real
  connection budget), not from a per-workload default, when applications or PgBouncer are known;
- build-dependent values (`wal_compression = lz4`, `io_method = io_uring`) are recommended only when a
  connected server lists them in `pg_settings.enumvals`; offline the value every build accepts is used;
- `idle_in_transaction_session_timeout` and `statement_timeout` guidance (pgtune has none).
All sizes are computed in kB, as pgtune does, and written in the largest unit with no loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pgdoctor.analyze.sizing.units import GB, KB, MB, format_kb

WORKLOADS = ("web", "oltp", "dw", "mixed", "desktop")
STORAGE = ("hdd", "ssd", "nvme", "san")
PG_VERSIONS = (13, 14, 15, 16, 17, 18)
NEWEST_PG = PG_VERSIONS[-1]

# pgtune's max_connections when none is given
PGTUNE_MAX_CONNECTIONS = {"web": 200, "oltp": 300, "dw": 40, "desktop": 20, "mixed": 100}
# PostgreSQL's default max_worker_processes; pgtune counts it in work_mem when it sets no parallel settings
DEFAULT_MAX_WORKER_PROCESSES = 8
DEFAULT_MAX_PARALLEL_WORKERS = 8
DEFAULT_SUPERUSER_RESERVED = 3
DEFAULT_AUTOVACUUM_MAX_WORKERS = 3

_KB_GB = GB // KB
_KB_MB = MB // KB


@dataclass(frozen=True)
class Hardware:
    """What the settings are computed for. ram_bytes is None only with a server and no --ram."""

    ram_bytes: int | None
    cpus: int | None
    storage: str = "ssd"
    workload: str = "web"
    pg_major: int = NEWEST_PG


@dataclass(frozen=True)
class Build:
    """Values the server's build accepts for build-dependent settings (pg_settings.enumvals); None offline."""

    wal_compression: tuple[str, ...] | None = None
    io_method: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Rec:
    """One recommended setting: its value as written in postgresql.conf, and why."""

    name: str
    value: str | None  # None: cannot be computed (needs --ram)
    reason: str
    per_role: bool = False  # guidance for ALTER ROLE ... SET, not for postgresql.conf
    differs_from_pgtune: bool = False


# ---- pgtune's formulas, in kB (the numbers pgtune computes) ----


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


# ---- pgdoctor's guidance where pgtune says nothing ----

IDLE_IN_TRANSACTION_TIMEOUT = {
    "web": "1min",
    "oltp": "1min",
    "mixed": "5min",
    "dw": "30min",
    "desktop": "30min",
}
STATEMENT_TIMEOUT = {"web": "30s", "oltp": "30s", "mixed": "5min", "dw": "0", "desktop": "0"}


@dataclass(frozen=True)
class Computed:
    """The numbers behind the recommendations, for the memory check and the tests."""

    ram_kb: float | None
    shared_buffers_kb: int | None
    work_mem_kb: int | None
    maintenance_work_mem_kb: int | None
    autovacuum_work_mem_kb: int | None
    wal_buffers_kb: int | None
    max_worker_processes: int
    max_parallel_workers: int
    autovacuum_max_workers: int
    recs: list[Rec] = field(default_factory=list)


def recommend(
    hw: Hardware,
    *,
    max_connections: int,
    max_connections_reason: str,
    work_mem_connections: int,
    work_mem_reason: str,
    superuser_reserved: int = DEFAULT_SUPERUSER_RESERVED,
    build: Build | None = None,
) -> Computed:
    """Every recommended setting, in the order the README lists them."""
    build = build or Build()
    w = hw.workload
    recs: list[Rec] = [
        Rec(
            "max_connections",
            str(max_connections),
            max_connections_reason,
            differs_from_pgtune=max_connections != PGTUNE_MAX_CONNECTIONS[w],
        ),
        Rec(
            "superuser_reserved_connections",
            str(superuser_reserved),
            "slots only superusers may use, so an administrator (or pgdoctor) gets in when the server is "
            "full; counted out of max_connections",
        ),
    ]
    par = parallel(hw.cpus, w)
    workers = par.max_worker_processes if par else DEFAULT_MAX_WORKER_PROCESSES
    par_workers = par.max_parallel_workers if par else DEFAULT_MAX_PARALLEL_WORKERS
    av_workers = autovacuum_max_workers(hw.cpus)

    sb = ecs = mwm = wm = wb = avwm = None
    ram_kb = hw.ram_bytes / KB if hw.ram_bytes is not None else None
    if ram_kb is not None:
        sb = shared_buffers_kb(ram_kb, w)
        ecs = effective_cache_size_kb(ram_kb, w)
        mwm = maintenance_work_mem_kb(ram_kb, w)
        wm = work_mem_kb(ram_kb, sb, work_mem_connections, workers, w)
        wb = wal_buffers_kb(sb)
        avwm = autovacuum_work_mem_kb(mwm)
        share = "1/16" if w == "desktop" else "1/4"
        recs += [
            Rec(
                "shared_buffers", format_kb(sb), f"{share} of RAM (pgtune); the rest is left to the OS cache"
            ),
            Rec(
                "effective_cache_size",
                format_kb(ecs),
                f"{'1/4' if w == 'desktop' else '3/4'} of RAM: what the planner may assume is cached "
                "(shared_buffers + OS cache); allocates nothing",
            ),
            Rec(
                "maintenance_work_mem",
                format_kb(mwm),
                f"RAM/{8 if w == 'dw' else 16}, at most 8GB (pgtune): VACUUM, CREATE INDEX, ALTER TABLE",
            ),
            Rec(
                "work_mem",
                format_kb(wm),
                work_mem_reason,
                differs_from_pgtune=work_mem_connections != PGTUNE_MAX_CONNECTIONS[w],
            ),
            Rec(
                "huge_pages",
                huge_pages(sb),
                "try: shared_buffers is 2GB or more, huge pages cut page-table overhead (needs "
                "vm.nr_hugepages on the host; 'try' starts without them)"
                if huge_pages(sb) == "try"
                else "off: shared_buffers below 2GB gains little from huge pages",
            ),
            Rec("wal_buffers", format_kb(wb), "3% of shared_buffers, at most 16MB (pgtune)"),
        ]
    else:
        for name in ("shared_buffers", "effective_cache_size", "maintenance_work_mem", "work_mem"):
            recs.append(Rec(name, None, "needs --ram (the server does not report its RAM)"))
        recs += [
            Rec("huge_pages", None, "needs --ram (depends on shared_buffers)"),
            Rec("wal_buffers", None, "needs --ram (depends on shared_buffers)"),
        ]
    recs += [
        Rec(
            "min_wal_size",
            format_kb(MIN_WAL_SIZE_MB[w] * _KB_MB),
            f"WAL kept for reuse, {w} workload (pgtune)",
        ),
        Rec(
            "max_wal_size",
            format_kb(MAX_WAL_SIZE_MB[w] * _KB_MB),
            f"WAL between checkpoints, {w} workload (pgtune): fewer forced checkpoints under write bursts",
        ),
        Rec(
            "checkpoint_completion_target",
            f"{CHECKPOINT_COMPLETION_TARGET:g}",
            "spread checkpoint writes over 90% of the interval (the default since PostgreSQL 14)",
        ),
        Rec(
            "default_statistics_target",
            str(default_statistics_target(w)),
            "larger samples for the planner on analytic queries" if w == "dw" else "the default sample size",
        ),
        Rec(
            "random_page_cost",
            f"{random_page_cost(hw.storage, w):g}",
            "spinning disks: random reads cost far more than sequential ones"
            if hw.storage == "hdd"
            else (
                "data warehouse larger than RAM: keep the default so big scans do not turn into index scans"
                if w == "dw"
                else f"{hw.storage}: random reads cost about as much as sequential ones"
            ),
        ),
        Rec(
            "effective_io_concurrency",
            str(EFFECTIVE_IO_CONCURRENCY[hw.storage]),
            f"concurrent prefetch requests {hw.storage} storage can serve (pgtune, Linux)",
        ),
    ]
    if par is not None:
        recs += [
            Rec(
                "max_worker_processes",
                str(par.max_worker_processes),
                f"one background worker per CPU ({hw.cpus})",
            ),
            Rec(
                "max_parallel_workers_per_gather",
                str(par.max_parallel_workers_per_gather),
                "half the CPUs per query" + ("" if w == "dw" else ", at most 4 (more rarely pays off)"),
            ),
            Rec(
                "max_parallel_workers",
                str(par.max_parallel_workers),
                f"all {hw.cpus} CPUs may run parallel workers",
            ),
            Rec(
                "max_parallel_maintenance_workers",
                str(par.max_parallel_maintenance_workers),
                "half the CPUs, at most 4, for parallel CREATE INDEX and VACUUM",
            ),
        ]
    if hw.pg_major >= 15:
        if build.wal_compression is not None and "lz4" in build.wal_compression:
            recs.append(
                Rec("wal_compression", "lz4", "compress full-page images in WAL; this server's build has lz4")
            )
        else:
            why = (
                "this server's build has no lz4"
                if build.wal_compression is not None
                else "pgtune says lz4, which needs a build --with-lz4: connect (--dsn) to check it"
            )
            recs.append(
                Rec(
                    "wal_compression",
                    "pglz",
                    f"compress full-page images in WAL with pglz, which every build has ({why})",
                    differs_from_pgtune=True,
                )
            )
    else:
        recs.append(Rec("wal_compression", "on", "compress full-page images in WAL (pglz)"))
    if w in ("web", "oltp", "mixed"):
        recs.append(
            Rec("jit", "off", "short queries: JIT compilation costs more planning time than it saves")
        )
    if hw.pg_major >= 18:
        if build.io_method is not None and "io_uring" in build.io_method:
            recs.append(
                Rec("io_method", "io_uring", "asynchronous I/O through io_uring; this server's build has it")
            )
        n = io_workers(hw.pg_major, hw.cpus)
        if n is not None:
            recs.append(
                Rec("io_workers", str(n), f"a quarter of the CPUs ({hw.cpus}) for asynchronous I/O workers")
            )
    if av_workers is not None:
        recs.append(
            Rec("autovacuum_max_workers", str(av_workers), f"{hw.cpus} CPUs can vacuum more tables at once")
        )
    if avwm is not None:
        recs.append(
            Rec(
                "autovacuum_work_mem",
                format_kb(avwm),
                "each autovacuum worker at most 2GB, however large maintenance_work_mem is",
            )
        )
    if w == "desktop":
        recs += [
            Rec("wal_level", "minimal", "a desktop needs no replication or archiving: least WAL"),
            Rec("max_wal_senders", "0", "required by wal_level = minimal"),
        ]
    idle = IDLE_IN_TRANSACTION_TIMEOUT[w]
    recs.append(
        Rec(
            "idle_in_transaction_session_timeout",
            idle,
            f"end sessions idle inside a transaction for {idle}: they hold locks, a snapshot and a slot "
            "(pgdoctor's guidance; pgtune has none)",
            differs_from_pgtune=True,
        )
    )
    stmt = STATEMENT_TIMEOUT[w]
    recs.append(
        Rec(
            "statement_timeout",
            stmt,
            (
                f"per application role (ALTER ROLE app SET statement_timeout = '{stmt}'), not globally: a "
                "global limit also cancels pg_dump, migrations and maintenance"
            )
            if stmt != "0"
            else "long analytic statements are expected: no limit; set one per role where it helps",
            per_role=True,
            differs_from_pgtune=True,
        )
    )
    return Computed(
        ram_kb=ram_kb,
        shared_buffers_kb=sb,
        work_mem_kb=wm,
        maintenance_work_mem_kb=mwm,
        autovacuum_work_mem_kb=avwm,
        wal_buffers_kb=wb,
        max_worker_processes=workers,
        max_parallel_workers=par_workers,
        autovacuum_max_workers=av_workers or DEFAULT_AUTOVACUUM_MAX_WORKERS,
        recs=recs,
    )
