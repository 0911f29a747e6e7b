"""`connections --ps`: the dataset read from the process list (who holds the connections when no SQL
client gets in). When every slot is taken, the reserved ones too (`sorry, too many clients already`), no
session can ask pg_stat_activity; on the database host (or in its container) the process list still
says, for every backend, its user, database, client address and state: PostgreSQL rewrites each
backend's process title (`update_process_title`, on by default on Linux) to

    postgres: [CLUSTER_NAME: ]USER DATABASE CLIENT(PORT) STATE[ waiting]

This module holds the rows (imported by the analysis); pgdoctor.collect.ps_proc reads them from /proc
and the data directory, never connecting to the server; the parsing is pure functions with doctests, in
pgdoctor.collect.ps_titles (the titles) and pgdoctor.collect.ps_config (postmaster.pid, configuration).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pgdoctor.collect.ps_titles import Title


@dataclass(frozen=True)
class PsBackend:
    """A child process of the postmaster: its pid, its raw title and the title parsed."""

    pid: int
    title: str
    parsed: Title


@dataclass(frozen=True)
class PsServer:
    """The server found in the process list, and the settings read from its files (None: unreadable)."""

    pid: int
    port: int
    data_dir: str | None
    version: str | None  # the major version from DATADIR/PG_VERSION (or the binary's path)
    cluster_name: str | None
    settings: dict[str, str] | None
    settings_files: list[str]
    settings_error: str | None
    os_user: str


@dataclass(frozen=True)
class PsData:
    server: PsServer
    backends: list[PsBackend]
