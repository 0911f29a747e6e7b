"""What several analyses share about pg_stat_activity and the monitoring role's privileges."""

from __future__ import annotations

from enum import StrEnum

from pgdoctor.analyze.findings import Finding, Severity
from pgdoctor.analyze.quoting import identifier

CLIENT_BACKEND = "client backend"  # pg_stat_activity.backend_type of an application's session
# pg_stat_activity.query (and pg_stat_statements.query) of another role's session or statement for a role
# without pg_read_all_stats ("Monitoring Database Activity" in the PostgreSQL docs)
HIDDEN_QUERY = "<insufficient privilege>"
INSUFFICIENT_PRIVILEGE = "insufficient_privilege"  # the finding's code; it makes the exit code 4


def insufficient_privilege(user: str, message: str, pids: tuple[int, ...] = ()) -> Finding:
    """The warning that the monitoring role cannot see other roles' activity, with the GRANT that fixes
    it; `message` says what is hidden and ends with what the role cannot do."""
    return Finding(
        Severity.WARNING,
        INSUFFICIENT_PRIVILEGE,
        user,
        message,
        f"GRANT pg_read_all_stats TO {user}; (or pg_monitor, which includes it)",
        pids,
        f"GRANT pg_read_all_stats TO {identifier(user)};",
    )


class Unusable(StrEnum):
    """Why an analysis could not read its source at all (pg_stat_statements for slow-queries); the exit
    code says so whatever --fail-on asks."""

    NO_ACCESS = "no_access"  # the role may not read it
    UNAVAILABLE = "unavailable"  # not installed, not preloaded, not created, or too old
