"""What every dataset carries about the server: version, settings, the role pgdoctor connected as."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pgdoctor import queries
from pgdoctor.collect import ranges
from pgdoctor.db import Database

QUERIES = {"settings": queries.SERVER_VERSIONS}


@dataclass(frozen=True)
class SettingRow:
    name: str
    setting: str
    unit: str
    context: str
    pending_restart: bool


@dataclass(frozen=True)
class ServerInfo:
    version_num: ranges.VersionNum
    version: str
    current_user: str
    is_superuser: bool
    can_read_all_stats: bool  # superuser, pg_read_all_stats or pg_monitor: sees every session's details
    settings: list[SettingRow]
    # A pooler or proxy stands between pgdoctor and the server: the server's pid or the client address
    # and port it sees are not those of pgdoctor's own connection. None: not known (older snapshots).
    via_pooler: bool | None = None

    def setting(self, name: str) -> str | None:
        for row in self.settings:
            if row.name == name:
                return row.setting
        return None

    def int_setting(self, name: str, default: int = 0) -> int:
        value = self.setting(name)
        return int(value) if value not in (None, "") else default

    @property
    def major(self) -> int:
        return self.version_num // 10000


@dataclass(frozen=True)
class _Role:
    current_user: str
    is_superuser: bool
    can_read_all_stats: bool


def collect_server(db: Database, setting_names: Iterable[str]) -> ServerInfo:
    role = db.rows(
        "SELECT current_user::text AS current_user, "
        "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS is_superuser, "
        "pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS can_read_all_stats",
        _Role,
    )[0]
    sql = queries.load("settings", queries.server_version(db.server_version_num))
    settings = db.rows(sql, SettingRow, [sorted(set(setting_names))])
    return ServerInfo(
        version_num=db.server_version_num,
        version=db.server_version,
        current_user=role.current_user,
        is_superuser=role.is_superuser,
        can_read_all_stats=role.is_superuser or role.can_read_all_stats,
        settings=settings,
        via_pooler=db.via_pooler,
    )
