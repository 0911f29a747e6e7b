"""Collect every server setting (pg_settings) for `pgdoctor recommend`'s live comparison."""

from __future__ import annotations

from dataclasses import dataclass

from pgdoctor import queries
from pgdoctor.collect.server import ServerInfo, collect_server
from pgdoctor.db import Database

QUERIES = {"all_settings": queries.SERVER_VERSIONS}


@dataclass(frozen=True)
class FullSettingRow:
    """One row of pg_settings; `setting` is reset_val (what every other session gets)."""

    name: str
    setting: str
    unit: str
    context: str  # postmaster: needs a restart; sighup: a reload; user/superuser: per session too
    vartype: str
    source: str
    pending_restart: bool
    enumvals: list[str] | None


@dataclass(frozen=True)
class SettingsData:
    server: ServerInfo
    settings: list[FullSettingRow]

    def by_name(self) -> dict[str, FullSettingRow]:
        return {row.name: row for row in self.settings}


def collect(db: Database) -> SettingsData:
    server = collect_server(db, ())
    sql = queries.load("all_settings", queries.server_version(db.server_version_num))
    return SettingsData(server=server, settings=db.rows(sql, FullSettingRow))
