"""Draw a SampleReport (`connections --sample`): per application and client address; its JSON contract."""

from __future__ import annotations

from typing import Any

from pgdoctor.analyze.format import duration
from pgdoctor.analyze.sample import SAMPLE_CLASSES, SampleGroup, SampleReport
from pgdoctor.render.common import pooler_note, round_s, server_json
from pgdoctor.render.document import Cell, Column, Document, Styled, Table, Text

CLASS_HEADER = {
    "active": "active",
    "idle_in_transaction": "idle in xact",
    "idle": "idle",
    "blocked": "blocked",
    "other": "other",
}


def _pct(share: float) -> Cell:
    return Styled(f"{share:.0%}", "dim") if share == 0 else f"{share:.0%}"


def header(report: SampleReport) -> Text:
    ended = " (interrupted: what was sampled until Ctrl-C)" if report.interrupted else ""
    rates = ", ".join(f"{db} {rate:g}/s" for db, rate in report.xacts_per_s.items() if rate > 0)
    return Text(
        [
            f"Sampled {duration(report.window_s)} of {duration(report.duration_s)} asked, "
            f"{report.ticks} reads every {duration(report.interval_s)}{ended}; at most "
            f"{report.clients_max} of {report.usable} usable slots in use",
            "Transactions per database (pg_stat_database, pgdoctor's own left out): " + (rates or "none"),
        ],
        style="yellow" if report.interrupted else "",
    )


def groups_table(report: SampleReport) -> Table:
    columns = [
        Column("application @ client"),
        Column("held min-max", "right"),
        Column("plateau", "right"),
        *[Column(CLASS_HEADER[c], "right") for c in SAMPLE_CLASSES],
        Column("busy (L)", "right"),
        Column("xacts ended", "right"),
        Column("xacts/s", "right"),
        Column("p50", "right"),
        Column("p95", "right"),
        Column("max", "right"),
        Column("idle in xact", "right"),
        Column("pool matched"),
    ]
    rows: list[list[Cell]] = []
    for g in report.groups:
        x = g.xacts
        rows.append(
            [
                g.label,
                f"{g.held_min}-{g.held_max}",
                f"{g.plateau_share:.0%}" + (" yes" if g.plateau else ""),
                *[_pct(g.time_share[c]) for c in SAMPLE_CLASSES],
                f"{g.busy_mean:g}",
                x.ended,
                f"{x.per_s:g}",
                duration(x.p50_s),
                duration(x.p95_s),
                duration(x.max_s),
                "" if x.idle_share is None else f"{x.idle_share:.0%}",
                g.pool_match or "",
            ]
        )
    return Table(
        "Share of session time per class, by application and client address",
        columns,
        rows,
        caption="Sessions without application_name are told apart by client address and user. Set "
        "application_name: libpq/psycopg `application_name=` in the DSN; SQLAlchemy "
        'create_engine(url, connect_args={"application_name": "x"}) (asyncpg: connect_args='
        '{"server_settings": {"application_name": "x"}}); Django DATABASES OPTIONS '
        '{"application_name": "x"}; asyncpg create_pool(server_settings={"application_name": "x"}).',
    )


def document(report: SampleReport) -> Document:
    title = f"pgdoctor connections --sample: PostgreSQL {report.server.version}"
    sections: list[Any] = [header(report), groups_table(report)]
    sections += pooler_note(report.server)
    return Document(title, sections, report.findings, primary=1)


def group_json(g: SampleGroup) -> dict[str, Any]:
    x = g.xacts
    return {
        "label": g.label,
        "application_name": g.application,
        "client": g.client,
        "user": g.user,
        "databases": g.databases,
        "sessions_seen": g.sessions_seen,
        "held_min": g.held_min,
        "held_max": g.held_max,
        "held_mean": g.held_mean,
        "plateau": g.plateau,
        "plateau_share": g.plateau_share,
        "time_share": g.time_share,
        "ever_idle": g.ever_idle,
        "busy_mean": g.busy_mean,
        "state_changes": g.state_changes,
        "pool_match": g.pool_match,
        "transactions": {
            "ended": x.ended,
            "open": x.open,
            "per_s": x.per_s,
            "per_s_source": x.per_s_source,
            "p50_s": round_s(x.p50_s),
            "p95_s": round_s(x.p95_s),
            "max_s": round_s(x.max_s),
            "mean_s": round_s(x.mean_s),
            "idle_in_transaction_share": x.idle_share,
            "typical_idle_gap_s": round_s(x.typical_idle_gap_s),
            "longest_idle_gap_s": round_s(x.longest_idle_gap_s),
        },
    }


def to_json(report: SampleReport) -> dict[str, Any]:
    return {
        "command": "connections",
        "source": "sample",
        "server": server_json(report.server),
        "sample": {
            "window_s": round_s(report.window_s),
            "duration_s": report.duration_s,
            "interval_s": report.interval_s,
            "ticks": report.ticks,
            "interrupted": report.interrupted,
            "usable": report.usable,
            "clients_max": report.clients_max,
            "xacts_per_s": report.xacts_per_s,
        },
        "groups": [group_json(g) for g in report.groups],
        "findings": [f.to_json() for f in report.findings],
    }
