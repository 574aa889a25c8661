"""A check's verdict: its status, one-line summary, details and report properties."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from pytest_cilium_upgrade.redact import Redactor


class Status(enum.Enum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class CheckResult:
    """A verdict: ``summary`` is one line; ``details`` say what, where and how to fix."""

    status: Status
    summary: str
    details: list[str] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """PASS, WARN and SKIP do not block the upgrade."""
        return self.status is not Status.FAIL

    def redacted(self, redactor: Redactor) -> CheckResult:
        return replace(
            self,
            summary=redactor.redact(self.summary),
            details=redactor.redact_all(self.details),
            properties={k: redactor.redact(v) for k, v in self.properties.items()},
        )


def _pass(summary: str, details: Iterable[str] = (), **props: str) -> CheckResult:
    return CheckResult(Status.PASS, summary, list(details), dict(props))


def _warn(summary: str, details: Iterable[str] = (), **props: str) -> CheckResult:
    return CheckResult(Status.WARN, summary, list(details), dict(props))


def _fail(summary: str, details: Iterable[str] = (), **props: str) -> CheckResult:
    return CheckResult(Status.FAIL, summary, list(details), dict(props))


def _skip(summary: str, details: Iterable[str] = ()) -> CheckResult:
    return CheckResult(Status.SKIP, summary, list(details))
