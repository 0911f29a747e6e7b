"""The one exit-code policy every command applies to its analysis (documented in README.md)."""

from __future__ import annotations

from collections.abc import Iterable

from pgdoctor.analyze.common import INSUFFICIENT_PRIVILEGE, Unusable
from pgdoctor.analyze.findings import Finding, Severity
from pgdoctor.errors import ExitCode

_UNUSABLE = {Unusable.NO_ACCESS: ExitCode.PRIVILEGE, Unusable.UNAVAILABLE: ExitCode.UNAVAILABLE}


def exit_code(findings: Iterable[Finding], fail_on: str, unusable: Unusable | None = None) -> int:
    """The process's exit code: 4 or 6 when the analysis could not read its source at all (`unusable`),
    whatever --fail-on says; else 1 when a finding reaches `fail_on` ("never", "info", "warning",
    "critical"); else 4 when the role could not see everything (an insufficient_privilege finding); else 0.

    >>> warn = Finding(Severity.WARNING, "long_wait", "app", "waits")
    >>> hidden = Finding(Severity.WARNING, INSUFFICIENT_PRIVILEGE, "monitor", "hidden")
    >>> exit_code([], "warning"), exit_code([warn], "never"), exit_code([warn], "warning")
    (0, 0, 1)
    >>> exit_code([warn], "critical"), exit_code([hidden], "never"), exit_code([hidden], "info")
    (0, 4, 1)
    >>> exit_code([warn], "info", Unusable.UNAVAILABLE), exit_code([], "never", Unusable.NO_ACCESS)
    (6, 4)
    """
    if unusable is not None:
        return int(_UNUSABLE[unusable])
    findings = list(findings)
    if fail_on != "never":
        threshold = Severity(fail_on).rank
        if any(f.severity.rank >= threshold for f in findings):
            return int(ExitCode.FINDINGS)
    if any(f.code == INSUFFICIENT_PRIVILEGE for f in findings):
        return int(ExitCode.PRIVILEGE)
    return int(ExitCode.OK)
