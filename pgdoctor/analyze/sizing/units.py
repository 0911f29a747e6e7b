"""Sizes and durations as PostgreSQL reads and writes them (binary units: 1kB = 1024 bytes)."""

from __future__ import annotations

import math
import re

from pgdoctor.errors import ExitCode, PgDoctorError

KB = 1024
MB = 1024 * KB
GB = 1024 * MB
TB = 1024 * GB

# What --ram accepts: PostgreSQL's own units (kB, MB, GB, TB), their one-letter forms and the IEC
# spellings (KiB, MiB, GiB, TiB), case-insensitive; all binary, as PostgreSQL reads them.
_RAM_UNITS = {
    "b": 1,
    "k": KB,
    "kb": KB,
    "kib": KB,
    "m": MB,
    "mb": MB,
    "mib": MB,
    "g": GB,
    "gb": GB,
    "gib": GB,
    "t": TB,
    "tb": TB,
    "tib": TB,
}
# The most RAM PostgreSQL's settings can use: effective_cache_size (3/4 of the RAM) is at most 2^31 - 1
# pages of 8kB, 16TB, and shared_buffers (1/4) at most 2^30 - 1 pages, 8TB ("Resource Consumption" in the
# docs, pg_settings.max_val); pgtune's formulas above it give values the server refuses to start with.
MAX_RAM = 16 * TB
_RAM = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")

# pg_settings.unit for memory settings: '8kB' (blocks), 'kB', 'MB', 'B'
_SETTING_MEMORY_UNITS = {"B": 1, "kB": KB, "8kB": 8 * KB, "MB": MB, "16MB": 16 * MB, "GB": GB, "TB": TB}
_SETTING_TIME_UNITS_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_ram(text: str) -> int:
    """'128G', '128GB', '512MB', '1T', '64GiB' -> bytes. A bare number is refused (which unit?)."""
    m = _RAM.match(text or "")
    if not m:
        raise PgDoctorError(
            f"--ram {text[:40]!r}: not a size; write it like 128G, 128GB, 512MB, 1T or 64GiB", ExitCode.USAGE
        )
    number, unit = float(m.group(1)), m.group(2).lower()
    if not unit:
        raise PgDoctorError(
            f"--ram {text[:40]!r}: give a unit (128G, 512MB, 1T): a bare number is ambiguous", ExitCode.USAGE
        )
    if unit not in _RAM_UNITS:
        raise PgDoctorError(
            f"--ram {text[:40]!r}: unknown unit {m.group(2)!r}; use kB, MB, GB or TB (or K, M, G, T, GiB …)",
            ExitCode.USAGE,
        )
    if not math.isfinite(number * _RAM_UNITS[unit]) or number * _RAM_UNITS[unit] > MAX_RAM:
        raise PgDoctorError(
            f"--ram {text[:40]!r}: more than {MAX_RAM // TB}TB is beyond what PostgreSQL's settings can use "
            "(effective_cache_size is at most 16TB, shared_buffers 8TB)",
            ExitCode.USAGE,
        )
    size = math.floor(number * _RAM_UNITS[unit])
    if size <= 0:
        raise PgDoctorError(f"--ram {text[:40]!r}: must be more than zero", ExitCode.USAGE)
    if size < 64 * MB:
        raise PgDoctorError(
            f"--ram {text[:40]!r}: too small to run PostgreSQL usefully (at least 64MB)", ExitCode.USAGE
        )
    return size


def format_kb(kb: int) -> str:
    """A size in kB as postgresql.conf takes it: the largest unit with no loss ('32GB', '20971kB')."""
    if kb != 0 and kb % (1024 * 1024) == 0:
        return f"{kb // (1024 * 1024)}GB"
    if kb != 0 and kb % 1024 == 0:
        return f"{kb // 1024}MB"
    return f"{kb}kB"


def format_bytes(n: int) -> str:
    """A byte count for people: 1 decimal in the largest binary unit ('101.3 GB')."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def setting_bytes(setting: str, unit: str) -> int | None:
    """A memory setting from pg_settings (setting + unit) in bytes; None when it is not a size (-1)."""
    if unit not in _SETTING_MEMORY_UNITS:
        return None
    try:
        value = int(float(setting))
    except ValueError:
        return None
    if value < 0:
        return None
    return value * _SETTING_MEMORY_UNITS[unit]


def setting_ms(setting: str, unit: str) -> float | None:
    """A time setting from pg_settings in milliseconds."""
    if unit not in _SETTING_TIME_UNITS_MS:
        return None
    try:
        return float(setting) * _SETTING_TIME_UNITS_MS[unit]
    except ValueError:
        return None


def format_ms(ms: float) -> str:
    """Milliseconds as postgresql.conf takes them, in the largest exact unit ('60s', '5min', '250ms')."""
    whole = int(ms)
    if whole == 0:
        return "0"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}ms"


_CONF_SIZE = re.compile(r"^(\d+)(kB|MB|GB|TB)$")
_CONF_TIME = re.compile(r"^(\d+)(us|ms|s|min|h|d)$")


def conf_bytes(value: str) -> int | None:
    """'32GB' -> bytes, for values pgdoctor writes; None if it is not a size."""
    m = _CONF_SIZE.match(value)
    if not m:
        return None
    return int(m.group(1)) * {"kB": KB, "MB": MB, "GB": GB, "TB": TB}[m.group(2)]


def conf_ms(value: str) -> float | None:
    """'60s' -> 60000.0; '0' -> 0.0; None if it is not a duration."""
    if value == "0":
        return 0.0
    m = _CONF_TIME.match(value)
    if not m:
        return None
    return int(m.group(1)) * _SETTING_TIME_UNITS_MS[m.group(2)]
