"""Findings: what every analysis reports, with a severity an exit code can be tied to."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "critical": 2}[self.value]


@dataclass(frozen=True)
class Finding:
    """One thing worth telling the operator: what, about whom, and what to do."""

    severity: Severity
    code: str  # stable identifier, e.g. "idle_in_transaction"
    subject: str  # what it is about: an application, a table, "server"
    message: str
    advice: str = ""
    pids: tuple[int, ...] = field(default_factory=tuple)
    # SQL (or, for PgBouncer, admin console commands) an operator could run: one statement per line,
    # what acts now first, then what prevents a recurrence; "" when there is none. Printed, never run.
    action: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "severity": self.severity.value,
            "code": self.code,
            "subject": self.subject,
            "message": self.message,
            "advice": self.advice,
            "pids": list(self.pids),
            "action": self.action,
        }


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Most severe first; within a severity, the order the analysis raised them (most important first)."""
    return sorted(findings, key=lambda f: -f.severity.rank)


def worst(findings: list[Finding]) -> Severity | None:
    return max((f.severity for f in findings), key=lambda s: s.rank, default=None)
