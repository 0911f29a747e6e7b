"""The only code that talks to a server: runs SQL from queries/ and returns typed rows.

DATASETS names every dataset a snapshot holds and where its collector lives (module:function,
imported lazily so commands only pay for what they read). A collector takes a `pgdoctor.db.Database`
and returns a frozen dataclass; a snapshot stores it as JSON and gives the same dataclass back.
"""

from __future__ import annotations

DATASETS: dict[str, str] = {
    "connections": "pgdoctor.collect.connections:collect",
    "locks": "pgdoctor.collect.locks:collect",
    "settings": "pgdoctor.collect.settings:collect",
    "statements": "pgdoctor.collect.statements:collect",
}

# Datasets not read from the PostgreSQL server pgdoctor connects to, but from somewhere else (their own
# DSN option); `pgdoctor snapshot` saves them when given that option. Name -> the dataset's dataclass.
POOLER_DATASETS: dict[str, str] = {
    "pgbouncer": "pgdoctor.collect.pgbouncer:PgBouncerData",  # snapshot --pgbouncer-dsn
}
