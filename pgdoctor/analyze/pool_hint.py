"""Without `--sample`: one read that looks like an application's pool at its ceiling, as a warning that
names the pattern as likely and asks for a sample to confirm it (one read cannot tell a steady state
from a moment)."""

from __future__ import annotations

from collections import defaultdict

from pgdoctor.analyze.connections import ConnectionsReport, Session
from pgdoctor.analyze.findings import Finding, Severity

BUSY = ("active", "idle_in_transaction", "idle_in_transaction_aborted", "blocked")
# The smallest ceiling per client address the hint names: SQLAlchemy's default pool_size. Fewer busy
# sessions are as likely a handful of threads each holding its one connection.
HINT_MIN_CONNECTIONS = 5


def likely_saturated(report: ConnectionsReport) -> list[Finding]:
    """`app_pool_saturated_likely`: every session of an application busy, none idle, the same count from
    every client address (at least HINT_MIN_CONNECTIONS each), while the server has free slots."""
    if report.capacity.slots_left <= 0:
        return []
    apps: dict[str, list[Session]] = defaultdict(list)
    for s in report.sessions:
        if s.via_pgbouncer is None:
            apps[s.application_name or f"(no application_name) {s.usename or '?'}"].append(s)
    findings = []
    for app, members in sorted(apps.items()):
        if any(s.cls not in BUSY for s in members):
            continue
        per_client: dict[str, int] = defaultdict(int)
        for s in members:
            per_client[s.client] += 1
        counts = set(per_client.values())
        if len(counts) != 1 or min(counts) < HINT_MIN_CONNECTIONS:
            continue
        each = counts.pop()
        from pgdoctor.analyze.sample import pool_match  # here: every live `connections` runs this module

        match = pool_match(each)
        findings.append(
            Finding(
                Severity.WARNING,
                "app_pool_saturated_likely",
                app,
                f"all {len(members)} sessions busy, none idle, {each} from each of {len(per_client)} client "
                f"address(es){f' ({match})' if match else ''}: likely a pool at its ceiling with requests "
                "waiting inside the application",
                "confirm with `pgdoctor connections --sample 5s` (one read cannot tell a steady state from "
                "a moment)",
                tuple(sorted(s.pid for s in members)),
            )
        )
    return findings
