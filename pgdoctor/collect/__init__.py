"""The only code that talks to a server: runs SQL from queries/ and returns typed rows.

DATASETS names every dataset a snapshot holds and its dataclass ("module:Class"; modules are imported
lazily so commands only pay for what they read). A dataset's module has `collect(db, …)`, the live read
of a command, and `capture(db, server, activity)`, the read of a snapshot, which takes the `ServerInfo`
(with the union of the modules' `SETTINGS`) and the pg_stat_activity rows read once for all datasets.
A snapshot stores the dataclass as JSON and gives the same dataclass back.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any, cast

DATASETS: dict[str, str] = {
    "connections": "pgdoctor.collect.connections:ConnectionsData",
    "locks": "pgdoctor.collect.locks:LocksData",
    "settings": "pgdoctor.collect.settings:SettingsData",
    "statements": "pgdoctor.collect.statements:StatementsData",
}

# Datasets not read from the PostgreSQL server pgdoctor connects to, but from somewhere else (their own
# DSN option); `pgdoctor snapshot` saves them when given that option. Name -> the dataset's dataclass.
POOLER_DATASETS: dict[str, str] = {
    "pgbouncer": "pgdoctor.collect.pgbouncer:PgBouncerData",  # snapshot --pgbouncer-dsn
}


def collector(name: str) -> Callable[[Any], Any]:
    """The live read of a dataset: its module's `collect(db)` (the module imported only now)."""
    module = {**DATASETS, **POOLER_DATASETS}[name].split(":")[0]
    return cast(Callable[[Any], Any], import_module(module).collect)
