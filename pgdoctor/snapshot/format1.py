"""Format 1 (pgdoctor 0.1.0), read as format 2 reads: each dataset held its own server and its own view of
pg_stat_activity, read at its own instant; they stay the dataset's."""

from __future__ import annotations

from typing import Any

# What format 1 kept per dataset and format 2 reads as pg_stat_activity rows: `locks.sessions` (the
# sessions in the lock picture, without these columns) and `statements.running` (the client backends
# running a statement, with two columns named otherwise and without the others).
_FORMAT_1_LOCK_SESSION = dict.fromkeys(("client_addr", "client_hostname", "backend_age_s", "xmin_age"))
_FORMAT_1_RUNNING: dict[str, Any] = {
    "backend_type": "client backend",
    "client_addr": None,
    "client_hostname": None,
    "backend_age_s": None,
    "state_age_s": None,
    "xmin_age": None,
    "blocked_by": [],
}
_FORMAT_1_RUNNING_NAMES = {"duration_s": "query_age_s", "queryid": "query_id"}


def from_format_1(name: str, data: Any) -> Any:
    """A format-1 dataset in the layout format 2 reads. Each format-1 dataset held its own server and its
    own view of pg_stat_activity, read at its own instant: they stay the dataset's. Anything that is not
    what format 1 wrote is left as it is, for the type check to refuse."""
    if type(data) is not dict:
        return data
    data = dict(data)
    if name == "locks" and "sessions" in data:
        sessions = data.pop("sessions")
        data["activity"] = (
            [{**_FORMAT_1_LOCK_SESSION, **r} if type(r) is dict else r for r in sessions]
            if type(sessions) is list
            else sessions
        )
    elif name == "statements":
        if "running" in data:
            running = data.pop("running")
            data["activity"] = [_format_1_running(r) for r in running] if type(running) is list else running
        if "limit" in data:  # a snapshot always held the top `limit` of every order, unfiltered
            data["snapshot_per_order"] = data.pop("limit")
    return data


def _format_1_running(row: Any) -> Any:
    if type(row) is not dict:
        return row
    return {**_FORMAT_1_RUNNING, **{_FORMAT_1_RUNNING_NAMES.get(k, k): v for k, v in row.items()}}
