"""The project's own exception and the documented exit codes."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes; documented in the README and in `pgdoctor --help`."""

    OK = 0
    FINDINGS = 1  # findings at or above --fail-on
    USAGE = 2  # bad option, bad value, unreadable or foreign --snapshot file
    CANNOT_CONNECT = 3  # refused, unknown host, bad password, missing database, no free slot
    PRIVILEGE = 4  # the role lacks a privilege; output (if any) is incomplete
    QUERY_FAILED = 5  # statement_timeout / lock_timeout hit, or a query failed on the server
    UNAVAILABLE = 6  # a required extension or feature is missing on the server
    BROKEN_PIPE = 141  # the reader of stdout went away (| head); 128 + SIGPIPE, as a shell would show it
    INTERRUPTED = 130  # Ctrl-C


EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 findings at or above --fail-on; 2 bad usage or input; "
    "3 cannot connect; 4 insufficient privilege (output incomplete); 5 query failed or timed out; "
    "6 required extension/feature missing; 130 interrupted; 141 output pipe closed by its reader."
)


class PgDoctorError(Exception):
    """An error pgdoctor explains in one line and turns into an exit code."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
