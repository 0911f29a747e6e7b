"""Sizes as PostgreSQL reads them: --ram parsing, values written for postgresql.conf."""

from __future__ import annotations

import pytest

from pgdoctor.analyze.sizing.units import (
    GB,
    MB,
    TB,
    conf_bytes,
    conf_ms,
    format_kb,
    format_ms,
    parse_ram,
    setting_bytes,
    setting_ms,
)
from pgdoctor.errors import ExitCode, PgDoctorError
from tests.conftest import invoke


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("128G", 128 * GB),
        ("128GB", 128 * GB),
        ("128gb", 128 * GB),
        ("512MB", 512 * MB),
        ("512M", 512 * MB),
        ("1T", TB),
        ("1TB", TB),
        ("64GiB", 64 * GB),
        ("1.5G", 3 * GB // 2),
        (" 16 GB ", 16 * GB),
        ("1048576kB", GB),
    ],
)
def test_ram_sizes_are_binary_as_postgresql_reads_them(text: str, expected: int) -> None:
    assert parse_ram(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "not a size"),
        ("128", "give a unit"),
        ("0G", "more than zero"),
        ("-4G", "more than zero"),
        ("12XB", "unknown unit"),
        ("lots", "not a size"),
        ("1MB", "too small"),
        ("G", "not a size"),
    ],
)
def test_bad_ram_is_a_usage_error(text: str, why: str) -> None:
    with pytest.raises(PgDoctorError, match=why) as err:
        parse_ram(text)
    assert err.value.exit_code is ExitCode.USAGE


def test_bad_ram_on_the_command_line_is_one_line_and_exit_2() -> None:
    for value in ("0G", "-1G", "128", "12XB"):
        result = invoke("recommend", "--ram", value)
        assert result.exit_code == 2, (value, result.stderr)
        assert result.stderr.startswith("error: --ram"), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.stderr


def test_sizes_are_written_in_the_largest_exact_unit() -> None:
    assert format_kb(32 * 1024 * 1024) == "32GB"
    assert format_kb(16 * 1024) == "16MB"
    assert format_kb(20971) == "20971kB"
    assert format_kb(1536 * 1024) == "1536MB"
    assert format_kb(0) == "0kB"
    for kb in (1, 1023, 1024, 20971, 1024 * 1024, 3 * 1024 * 1024 + 1):
        assert conf_bytes(format_kb(kb)) == kb * 1024


def test_pg_settings_values_in_their_units() -> None:
    assert setting_bytes("16384", "8kB") == 128 * MB
    assert setting_bytes("4096", "kB") == 4 * MB
    assert setting_bytes("-1", "kB") is None
    assert setting_bytes("100", "") is None
    assert setting_ms("60000", "ms") == 60_000
    assert setting_ms("60", "s") == 60_000
    assert setting_ms("1", "min") == 60_000
    assert format_ms(60_000) == "1min"
    assert format_ms(30_000) == "30s"
    assert format_ms(250) == "250ms"
    assert format_ms(0) == "0"
    assert conf_ms("5min") == 300_000
    assert conf_ms("0") == 0
    assert conf_ms("on") is None
