"""The choices the commands offer, one enum each, defined once for the analysis and the command line.

The commands' typer options use these enums directly, so this module imports nothing heavy (the CLI
imports it at start; the analysis modules themselves are imported only when a command runs).
"""

from __future__ import annotations

from enum import StrEnum


class GroupBy(StrEnum):
    """connections --by: what the sessions are grouped by (process titles carry no application_name,
    so --ps offers all but APPLICATION)."""

    APPLICATION = "application"
    USER = "user"
    DATABASE = "database"
    CLIENT = "client"


class Sort(StrEnum):
    """slow-queries --sort: the order of the statements (collect.statements.ORDER maps each to the
    column the server sorts by)."""

    TOTAL = "total"
    MEAN = "mean"
    CALLS = "calls"
    ROWS = "rows"
    IO = "io"
    TEMP = "temp"
    PLAN = "plan"


class Storage(StrEnum):
    """recommend --storage (pgtune's hard-drive types)."""

    HDD = "hdd"
    SSD = "ssd"
    NVME = "nvme"
    SAN = "san"


class Workload(StrEnum):
    """recommend --workload (pgtune's DB types)."""

    WEB = "web"
    OLTP = "oltp"
    DW = "dw"
    MIXED = "mixed"
    DESKTOP = "desktop"
