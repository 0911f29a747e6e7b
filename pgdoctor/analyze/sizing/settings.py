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

from dataclasses import dataclass, field

from pgdoctor.analyze.sizing import pgtune
from pgdoctor.analyze.sizing.units import KB, MB, format_kb
from pgdoctor.queries import SERVER_VERSIONS

# the PostgreSQL major versions pgdoctor supports (its SQL's versions); workloads and storage kinds are
# pgdoctor.analyze.choices.Workload and Storage
PG_VERSIONS = tuple(major for major, _ in SERVER_VERSIONS)
NEWEST_PG = PG_VERSIONS[-1]

# pgtune's max_connections when none is given
PGTUNE_MAX_CONNECTIONS = {"web": 200, "oltp": 300, "dw": 40, "desktop": 20, "mixed": 100}
# PostgreSQL's default max_worker_processes; pgtune counts it in work_mem when it sets no parallel settings
DEFAULT_MAX_WORKER_PROCESSES = 8
DEFAULT_MAX_PARALLEL_WORKERS = 8
DEFAULT_SUPERUSER_RESERVED = 3
DEFAULT_AUTOVACUUM_MAX_WORKERS = 3

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


def connection_recs(max_connections: int, reason: str, superuser_reserved: int, w: str) -> list[Rec]:
    return [
        Rec(
            "max_connections",
            str(max_connections),
            reason,
            differs_from_pgtune=max_connections != PGTUNE_MAX_CONNECTIONS[w],
        ),
        Rec(
            "superuser_reserved_connections",
            str(superuser_reserved),
            "slots only superusers may use, so an administrator (or pgdoctor) gets in when the server is "
            "full; counted out of max_connections",
        ),
    ]


@dataclass(frozen=True)
class Memory:
    """The RAM-dependent sizes in kB (None without --ram)."""

    shared_buffers: int | None = None
    effective_cache_size: int | None = None
    maintenance_work_mem: int | None = None
    work_mem: int | None = None
    wal_buffers: int | None = None
    autovacuum_work_mem: int | None = None


def memory_sizes(ram_kb: float | None, w: str, work_mem_connections: int, workers: int) -> Memory:
    if ram_kb is None:
        return Memory()
    sb = pgtune.shared_buffers_kb(ram_kb, w)
    mwm = pgtune.maintenance_work_mem_kb(ram_kb, w)
    return Memory(
        shared_buffers=sb,
        effective_cache_size=pgtune.effective_cache_size_kb(ram_kb, w),
        maintenance_work_mem=mwm,
        work_mem=pgtune.work_mem_kb(ram_kb, sb, work_mem_connections, workers, w),
        wal_buffers=pgtune.wal_buffers_kb(sb),
        autovacuum_work_mem=pgtune.autovacuum_work_mem_kb(mwm),
    )


def memory_recs(m: Memory, w: str, work_mem_reason: str, work_mem_differs: bool) -> list[Rec]:
    if m.shared_buffers is None:
        needs = "needs --ram (the server does not report its RAM)"
        return [
            *(Rec(n, None, needs) for n in ("shared_buffers", "effective_cache_size", "maintenance_work_mem",
                                            "work_mem")),
            Rec("huge_pages", None, "needs --ram (depends on shared_buffers)"),
            Rec("wal_buffers", None, "needs --ram (depends on shared_buffers)"),
        ]  # fmt: skip
    assert m.effective_cache_size is not None and m.maintenance_work_mem is not None
    assert m.work_mem is not None and m.wal_buffers is not None
    share = "1/16" if w == "desktop" else "1/4"
    huge = pgtune.huge_pages(m.shared_buffers)
    return [
        Rec(
            "shared_buffers",
            format_kb(m.shared_buffers),
            f"{share} of RAM (pgtune); the rest is left to the OS cache",
        ),
        Rec(
            "effective_cache_size",
            format_kb(m.effective_cache_size),
            f"{'1/4' if w == 'desktop' else '3/4'} of RAM: what the planner may assume is cached "
            "(shared_buffers + OS cache); allocates nothing",
        ),
        Rec(
            "maintenance_work_mem",
            format_kb(m.maintenance_work_mem),
            f"RAM/{8 if w == 'dw' else 16}, at most 8GB (pgtune): VACUUM, CREATE INDEX, ALTER TABLE",
        ),
        Rec("work_mem", format_kb(m.work_mem), work_mem_reason, differs_from_pgtune=work_mem_differs),
        Rec(
            "huge_pages",
            huge,
            "try: shared_buffers is 2GB or more, huge pages cut page-table overhead (needs "
            "vm.nr_hugepages on the host; 'try' starts without them)"
            if huge == "try"
            else "off: shared_buffers below 2GB gains little from huge pages",
        ),
        Rec("wal_buffers", format_kb(m.wal_buffers), "3% of shared_buffers, at most 16MB (pgtune)"),
    ]


def wal_and_planner_recs(hw: Hardware) -> list[Rec]:
    w = hw.workload
    return [
        Rec(
            "min_wal_size",
            format_kb(pgtune.MIN_WAL_SIZE_MB[w] * _KB_MB),
            f"WAL kept for reuse, {w} workload (pgtune)",
        ),
        Rec(
            "max_wal_size",
            format_kb(pgtune.MAX_WAL_SIZE_MB[w] * _KB_MB),
            f"WAL between checkpoints, {w} workload (pgtune): fewer forced checkpoints under write bursts",
        ),
        Rec(
            "checkpoint_completion_target",
            f"{pgtune.CHECKPOINT_COMPLETION_TARGET:g}",
            "spread checkpoint writes over 90% of the interval (the default since PostgreSQL 14)",
        ),
        Rec(
            "default_statistics_target",
            str(pgtune.default_statistics_target(w)),
            "larger samples for the planner on analytic queries" if w == "dw" else "the default sample size",
        ),
        Rec(
            "random_page_cost",
            f"{pgtune.random_page_cost(hw.storage, w):g}",
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
            str(pgtune.EFFECTIVE_IO_CONCURRENCY[hw.storage]),
            f"concurrent prefetch requests {hw.storage} storage can serve (pgtune, Linux)",
        ),
    ]


def parallel_recs(par: pgtune.Parallel | None, hw: Hardware) -> list[Rec]:
    if par is None:
        return []
    return [
        Rec(
            "max_worker_processes",
            str(par.max_worker_processes),
            f"one background worker per CPU ({hw.cpus})",
        ),
        Rec(
            "max_parallel_workers_per_gather",
            str(par.max_parallel_workers_per_gather),
            "half the CPUs per query" + ("" if hw.workload == "dw" else ", at most 4 (more rarely pays off)"),
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


def wal_compression_rec(hw: Hardware, build: Build) -> Rec:
    if hw.pg_major < 15:
        return Rec("wal_compression", "on", "compress full-page images in WAL (pglz)")
    if build.wal_compression is not None and "lz4" in build.wal_compression:
        return Rec("wal_compression", "lz4", "compress full-page images in WAL; this server's build has lz4")
    why = (
        "this server's build has no lz4"
        if build.wal_compression is not None
        else "pgtune says lz4, which needs a build --with-lz4: connect (--dsn) to check it"
    )
    return Rec(
        "wal_compression",
        "pglz",
        f"compress full-page images in WAL with pglz, which every build has ({why})",
        differs_from_pgtune=True,
    )


def io_recs(hw: Hardware, build: Build) -> list[Rec]:
    """jit for short queries; PostgreSQL 18's asynchronous I/O."""
    recs = []
    if hw.workload in ("web", "oltp", "mixed"):
        recs.append(
            Rec("jit", "off", "short queries: JIT compilation costs more planning time than it saves")
        )
    if hw.pg_major >= 18 and build.io_method is not None and "io_uring" in build.io_method:
        recs.append(
            Rec("io_method", "io_uring", "asynchronous I/O through io_uring; this server's build has it")
        )
    n = pgtune.io_workers(hw.pg_major, hw.cpus)
    if n is not None:
        recs.append(
            Rec("io_workers", str(n), f"a quarter of the CPUs ({hw.cpus}) for asynchronous I/O workers")
        )
    return recs


def autovacuum_recs(hw: Hardware, av_workers: int | None, avwm: int | None) -> list[Rec]:
    recs = []
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
    if hw.workload == "desktop":
        recs += [
            Rec("wal_level", "minimal", "a desktop needs no replication or archiving: least WAL"),
            Rec("max_wal_senders", "0", "required by wal_level = minimal"),
        ]
    return recs


def timeout_recs(w: str) -> list[Rec]:
    """pgdoctor's guidance; pgtune has none."""
    idle = IDLE_IN_TRANSACTION_TIMEOUT[w]
    stmt = STATEMENT_TIMEOUT[w]
    return [
        Rec(
            "idle_in_transaction_session_timeout",
            idle,
            f"end sessions idle inside a transaction for {idle}: they hold locks, a snapshot and a slot "
            "(pgdoctor's guidance; pgtune has none)",
            differs_from_pgtune=True,
        ),
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
        ),
    ]


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
    par = pgtune.parallel(hw.cpus, w)
    workers = par.max_worker_processes if par else DEFAULT_MAX_WORKER_PROCESSES
    av_workers = pgtune.autovacuum_max_workers(hw.cpus)
    ram_kb = hw.ram_bytes / KB if hw.ram_bytes is not None else None
    m = memory_sizes(ram_kb, w, work_mem_connections, workers)
    recs = [
        *connection_recs(max_connections, max_connections_reason, superuser_reserved, w),
        *memory_recs(m, w, work_mem_reason, work_mem_connections != PGTUNE_MAX_CONNECTIONS[w]),
        *wal_and_planner_recs(hw),
        *parallel_recs(par, hw),
        wal_compression_rec(hw, build),
        *io_recs(hw, build),
        *autovacuum_recs(hw, av_workers, m.autovacuum_work_mem),
        *timeout_recs(w),
    ]
    return Computed(
        ram_kb=ram_kb,
        shared_buffers_kb=m.shared_buffers,
        work_mem_kb=m.work_mem,
        maintenance_work_mem_kb=m.maintenance_work_mem,
        autovacuum_work_mem_kb=m.autovacuum_work_mem,
        wal_buffers_kb=m.wal_buffers,
        max_worker_processes=workers,
        max_parallel_workers=par.max_parallel_workers if par else DEFAULT_MAX_PARALLEL_WORKERS,
        autovacuum_max_workers=av_workers or DEFAULT_AUTOVACUUM_MAX_WORKERS,
        recs=recs,
    )
