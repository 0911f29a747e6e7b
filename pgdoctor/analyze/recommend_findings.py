"""`recommend`'s own findings and sentences: the running server's dangerous settings, what was assumed of
the applications, and how the measured demand sized the pools."""

from __future__ import annotations

from pgdoctor.analyze.findings import Finding, Severity
from pgdoctor.analyze.sample import HEADROOM
from pgdoctor.analyze.sizing import pools
from pgdoctor.analyze.sizing.demand import Demand
from pgdoctor.collect.settings import FullSettingRow


def dangerous(rows: dict[str, FullSettingRow]) -> list[Finding]:
    """Running settings that risk data or availability, whatever the hardware."""
    out: list[Finding] = []
    for name, what in (
        ("fsync", "a crash of the OS or power loss can corrupt the whole cluster"),
        ("full_page_writes", "a crash during a page write leaves torn pages that WAL replay cannot repair"),
    ):
        row = rows.get(name)
        if row and row.setting == "off":
            out.append(
                Finding(
                    Severity.CRITICAL,
                    f"{name}_off",
                    name,
                    f"{name} is off: {what}",
                    f"set {name} = on (only ever off for throwaway data, e.g. a test cluster)",
                )
            )
    row = rows.get("idle_in_transaction_session_timeout")
    if row and row.setting == "0":
        out.append(
            Finding(
                Severity.WARNING,
                "idle_in_transaction_timeout_off",
                "idle_in_transaction_session_timeout",
                "idle_in_transaction_session_timeout is 0 (off): a session left idle inside a transaction "
                "holds its locks, its snapshot and a connection slot for ever",
                "set idle_in_transaction_session_timeout (the recommendation below); fix the application too",
            )
        )
    pending = sorted(r.name for r in rows.values() if r.pending_restart)
    if pending:
        out.append(
            Finding(
                Severity.WARNING,
                "pending_restart",
                "server",
                f"changed but not in effect until a restart: {', '.join(pending)}",
                "restart the server in a maintenance window (or revert the change)",
            )
        )
    return out


APP_SYNTAX = "--app NAME=PROCESSES[xTHREADS] (threads) or NAME=PROCESSESxasync:TASKS (asyncio)"


def apps_observed(apps: list[pools.AppSpec], where: str = "pg_stat_activity") -> Finding:
    """Applications read from PgBouncer's clients: each connection taken as one process."""
    return Finding(
        Severity.INFO,
        "apps_observed",
        "inputs",
        f"no --app given: pools sized for the {sum(a.processes for a in apps)} client connections "
        f"seen in {where}, per application_name, each counted as one process with one "
        "connection",
        f"give {APP_SYNTAX} for the real topology",
    )


LISTED = 10  # applications named in the apps_observed finding; the demand table has them all


def demand_assumed(d: Demand) -> Finding:
    """No --app: what was read as each application's topology, and that pools never go below it."""
    what = "seen in one read of pg_stat_activity" if d.source == "observed" else "measured by the sample"
    parts = [
        f"{a.name}: {a.needed} needed at once ({a.topology}; {a.processes} x {a.per_process})"
        + (f", {a.not_demand} leaked, stuck or held idle left out" if a.not_demand else "")
        for a in d.apps[:LISTED]
    ]
    if len(d.apps) > LISTED:
        parts.append(f"and {len(d.apps) - LISTED} more (the demand table)")
    return Finding(
        Severity.INFO,
        "apps_observed",
        "inputs",
        f"no --app given: the processes and threads behind each application are not known, so pools are "
        f"sized from the connections {what}, never below what each application used at once, with the "
        f"processes assumed from the connections per client address: {'; '.join(parts) or 'none'}",
        f"give {APP_SYNTAX} for the real topology"
        + ("; `recommend --sample 30s` measures the demand (Little's law)" if d.source == "observed" else ""),
    )


def server_basis(d: Demand | None) -> str:
    """How a sample's server connections were measured (Little's law), for the pool's reason."""
    if d is None or d.server_busy is None:
        return ""
    return (
        f"the sample measured {d.server_busy:g} connections busy in transactions on average in database "
        f"{d.busiest} (transactions per second x their time, summed over its applications), x "
        f"{HEADROOM:g} headroom = {d.server_needed}; {d.server_needed_fixed} once the idle time inside "
        "transactions is gone"
    )


def not_demand_note(d: Demand) -> str:
    return (
        f"; {d.not_demand} connection(s) seen leaked, stuck idle in transaction or held unused are not "
        "demand and left out, max_connections is not raised for them: fix them in the application (see the "
        "findings); until then idle_session_timeout (PostgreSQL 14+) or PgBouncer in transaction mode keeps "
        "idle client connections off the server's slots"
    )
