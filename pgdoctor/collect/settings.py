"""Collect every server setting (pg_settings) for `pgdoctor recommend`'s live comparison."""

from __future__ import annotations

from dataclasses import dataclass

from pgdoctor import queries
from pgdoctor.collect.activity import ActivityRow
from pgdoctor.collect.server import ServerInfo, collect_server
from pgdoctor.db import Database

QUERIES = {"all_settings": queries.SERVER_VERSIONS}
SETTINGS: tuple[str, ...] = ()  # ServerInfo's short list: none of its own (it reads them all)


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
    return capture(db, collect_server(db, SETTINGS), [])


def capture(db: Database, server: ServerInfo, activity: list[ActivityRow]) -> SettingsData:
    """The dataset for a snapshot, with the server it read once (pg_stat_activity is not needed)."""
    sql = queries.load("all_settings", queries.server_version(db.server_version_num))
    return SettingsData(server=server, settings=db.rows(sql, FullSettingRow))
